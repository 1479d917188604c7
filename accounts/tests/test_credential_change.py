"""What survives a credential change: API keys die with a password change when asked, and always with a
deactivation; logout-all ends the user's Django cookie sessions (the admin, the browsable API) too."""

import pytest

from accounts.models import User
from apikeys import services as apikey_services
from apikeys.models import APIKey

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me"
NEW_PASSWORD = "another horse battery staple"


def _key(user, name="automation"):
    return apikey_services.api_key_create(user=user, name=name)[1]


def _change_password(client, password, **extra):
    body = {"current_password": password, "new_password": NEW_PASSWORD, **extra}
    return client.post("/api/v1/auth/password/change", body, format="json")


def test_password_change_keeps_api_keys_unless_asked(user, password, auth_client, client_for):
    key = _key(user)
    assert _change_password(auth_client, password).status_code == 204
    assert client_for(key).get(ME).status_code == 200


def test_password_change_with_revoke_api_keys_revokes_every_key(user, password, auth_client, client_for):
    keys = [_key(user, name=f"k{n}") for n in range(2)]
    assert client_for(keys[0]).get(ME).status_code == 200  # warm
    assert _change_password(auth_client, password, revoke_api_keys=True).status_code == 204
    for key in keys:
        assert client_for(key).get(ME).status_code == 401
    assert not APIKey.objects.filter(owner=user, revoked_at__isnull=True).exists()
    assert auth_client.get(ME).status_code == 200  # the calling session stays


def test_password_change_rejects_a_non_boolean_revoke_api_keys(password, auth_client):
    assert _change_password(auth_client, password, revoke_api_keys="perhaps").status_code == 400


def test_admin_api_deactivation_revokes_the_users_api_keys(make_user, user, login, client_for):
    key = _key(user)
    admin = client_for(login(make_user("root", is_staff=True)).access)
    assert admin.patch(f"/api/v1/users/{user.pk}", {"is_active": False}, format="json").status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=True)  # reactivated: the key must stay dead
    assert client_for(key).get(ME).status_code == 401
    assert APIKey.objects.get(owner=user).revoked_at is not None


def test_django_admin_deactivation_revokes_the_users_api_keys(client, make_user, user, client_for):
    key = _key(user)
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    response = client.post("/admin/accounts/user/", {"action": "deactivate_and_revoke", "_selected_action": [user.pk]})
    assert response.status_code == 302
    User.objects.filter(pk=user.pk).update(is_active=True)  # reactivated: the key must stay dead
    assert client_for(key).get(ME).status_code == 401


def test_logout_all_ends_the_users_cookie_sessions(client, make_user, login, client_for):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)  # a Django session cookie, as the admin site and the browsable API use
    assert client.get("/admin/").status_code == 200
    assert client_for(login(admin).access).post("/api/v1/auth/logout-all").status_code == 204
    response = client.get("/admin/")
    assert response.status_code == 302 and "/login/" in response["Location"]
