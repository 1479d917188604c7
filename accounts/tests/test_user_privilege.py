"""Who may change whom through PATCH /api/v1/users/{id}: role changes are a superuser's, with a JWT from a
recent login; a superuser's account is a superuser's to change; every change is on the target's record."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuthSession, SecurityEvent, User
from apikeys import services as apikey_services

pytestmark = pytest.mark.django_db


def _patch(client, user, **changes):
    return client.patch(f"/api/v1/users/{user.pk}", changes, format="json")


@pytest.fixture
def staff(make_user):
    """An admin of the API (is_staff) without superuser rights: no admin permissions at all."""
    return make_user("staffer", is_staff=True)


@pytest.fixture
def superuser(make_user):
    return make_user("root", is_staff=True, is_superuser=True)


def test_a_staff_user_cannot_make_anyone_an_admin(staff, user, login, client_for):
    response = _patch(client_for(login(staff).access), user, is_admin=True)
    assert response.status_code == 403
    assert User.objects.get(pk=user.pk).is_staff is False
    assert not SecurityEvent.objects.filter(type="admin_change").exists()


def test_a_staff_user_cannot_touch_a_superuser(staff, superuser, login, client_for):
    client = client_for(login(staff).access)
    for changes in ({"is_admin": False}, {"is_active": False}, {"name": "Pwned"}, {"email": "me@evil.test"}):
        assert _patch(client, superuser, **changes).status_code == 403, changes
    fresh = User.objects.get(pk=superuser.pk)
    assert (fresh.is_staff, fresh.is_active, fresh.name, fresh.email) == (True, True, "", "root@example.com")


def test_an_admins_api_key_cannot_change_roles(superuser, user, client_for):
    _, plaintext = apikey_services.api_key_create(user=superuser, name="automation")
    response = _patch(client_for(plaintext), user, is_admin=True)
    assert response.status_code == 403
    assert User.objects.get(pk=user.pk).is_staff is False


def test_a_role_change_needs_a_recent_authentication(superuser, user, login, client_for):
    pair = login(superuser)
    AuthSession.objects.filter(user=superuser).update(authenticated_at=timezone.now() - timedelta(hours=2))
    response = _patch(client_for(pair.access), user, is_admin=True)
    assert response.status_code == 403 and response.json()["code"] == "reauth_required"
    assert User.objects.get(pk=user.pk).is_staff is False


def test_a_superuser_promotes_and_demotes_and_it_is_recorded_and_takes_effect_at_once(
    superuser, user, login, client_for
):
    admin = client_for(login(superuser).access)
    target = client_for(login(user).access)
    assert target.get("/api/v1/users").status_code == 403  # warm: the target's session is cached
    response = _patch(admin, user, is_admin=True)
    assert response.status_code == 200 and response.json()["is_admin"] is True
    assert target.get("/api/v1/users").status_code == 200  # the very next request
    assert _patch(admin, user, is_admin=False).status_code == 200
    assert target.get("/api/v1/users").status_code == 403
    events = SecurityEvent.objects.filter(user=user, type="admin_change").order_by("pk")
    assert [event.detail for event in events] == [
        {"change": "is_admin", "to": True, "by": superuser.pk},
        {"change": "is_admin", "to": False, "by": superuser.pk},
    ]


def test_a_staff_user_manages_ordinary_accounts_and_each_change_is_an_event(staff, user, login, client_for):
    admin = client_for(login(staff).access)
    target = client_for(login(user).access)
    assert target.get("/api/v1/auth/me").status_code == 200
    # is_admin sent back unchanged: no role change, so a staff user may send it
    response = _patch(admin, user, name="Alice B", is_active=False, is_admin=False)
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert target.get("/api/v1/auth/me").status_code == 401
    details = sorted(
        (e.detail for e in SecurityEvent.objects.filter(user=user, type="admin_change")), key=lambda d: d["change"]
    )
    assert details == [
        {"change": "is_active", "to": False, "by": staff.pk},
        {"change": "name", "to": "Alice B", "by": staff.pk},
    ]


def test_a_superuser_may_change_another_superuser(superuser, make_user, login, client_for):
    other = make_user("root2", is_staff=True, is_superuser=True)
    assert _patch(client_for(login(superuser).access), other, name="Second").status_code == 200
