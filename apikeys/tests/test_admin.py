"""The Django admin for API keys, driven through Django's test client as a staff superuser would."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client, override_settings
from django.urls import reverse

from apikeys import keys
from apikeys.models import APIKey
from apikeys.tests.factories import APIKeyFactory
from config.scopes import ALL_SCOPES

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:apikeys_apikey_changelist")
ADD = reverse("admin:apikeys_apikey_add")
PROTECTED = "/api/v1/hello/protected"


@pytest.fixture
def admin_client(make_user):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    client.admin = admin
    return client


def key_works(plaintext) -> bool:
    return Client(HTTP_X_API_KEY=plaintext).get(PROTECTED).status_code == 200


def test_changelist_shows_keys_without_secrets(admin_client, user, other_user, django_assert_max_num_queries):
    created = [APIKeyFactory(owner=user, name="alice ci"), APIKeyFactory(owner=other_user, name="bob ci")]
    with django_assert_max_num_queries(8):
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    for key in created:
        assert key.name in page and key.prefix in page
        assert key.key_hash not in page and key.plaintext[keys.DISPLAY_PREFIX_LENGTH :] not in page
    assert "Revoke selected API keys" in page


def test_changelist_query_count_does_not_grow_with_keys(admin_client, make_user, django_assert_max_num_queries):
    for n in range(20):
        APIKeyFactory(owner=make_user(), name=f"k{n}")
    with django_assert_max_num_queries(8):
        assert admin_client.get(CHANGELIST).status_code == 200


def test_search_by_prefix_and_owner(admin_client, user, other_user):
    alices = APIKeyFactory(owner=user, name="alpha")
    bobs = APIKeyFactory(owner=other_user, name="beta")

    page = admin_client.get(CHANGELIST, {"q": alices.prefix}).content.decode()
    assert "alpha" in page and "beta" not in page

    page = admin_client.get(CHANGELIST, {"q": "bob"}).content.decode()
    assert "beta" in page and "alpha" not in page
    assert bobs.prefix in page


def test_status_filter(admin_client, user):
    from apikeys import services

    APIKeyFactory(owner=user, name="still-good")
    revoked = APIKeyFactory(owner=user, name="gone-away")
    services.api_key_revoke(key=revoked)
    page = admin_client.get(CHANGELIST, {"status": "revoked"}).content.decode()
    assert "gone-away" in page and "still-good" not in page
    page = admin_client.get(CHANGELIST, {"status": "active"}).content.decode()
    assert "still-good" in page and "gone-away" not in page


def test_revoke_action_revokes_the_selected_keys_through_the_service(admin_client, user, other_user):
    first, second = APIKeyFactory(owner=user), APIKeyFactory(owner=other_user)
    untouched = APIKeyFactory(owner=user)
    response = admin_client.post(
        CHANGELIST,
        {"action": "revoke_selected", "_selected_action": [first.pk, second.pk], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    assert "2 API keys revoked." in response.content.decode()
    assert APIKey.objects.get(pk=first.pk).revoked_at is not None
    assert APIKey.objects.get(pk=second.pk).revoked_at is not None
    assert APIKey.objects.get(pk=untouched.pk).revoked_at is None
    assert not key_works(first.plaintext) and not key_works(second.plaintext)
    assert key_works(untouched.plaintext)


def test_revoke_action_on_an_already_revoked_key_keeps_its_time(admin_client, user):
    from apikeys import services

    key = APIKeyFactory(owner=user)
    services.api_key_revoke(key=key)
    revoked_at = APIKey.objects.get(pk=key.pk).revoked_at
    admin_client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [key.pk]})
    assert APIKey.objects.get(pk=key.pk).revoked_at == revoked_at


def test_revoke_action_needs_change_permission(make_user, user):
    from django.contrib.auth.models import Permission

    viewer = make_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    key = APIKeyFactory(owner=user)
    client = Client()
    client.force_login(viewer)
    client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [key.pk]})
    assert APIKey.objects.get(pk=key.pk).revoked_at is None
    assert key_works(key.plaintext)


def test_add_form_creates_a_key_and_shows_it_once(admin_client, user):
    form = admin_client.get(ADD)
    assert form.status_code == 200
    assert "expires_days" in form.content.decode() and "key_hash" not in form.content.decode()

    response = admin_client.post(
        ADD, {"owner": user.pk, "name": "from the admin", "expires_days": "7", "scopes": ALL_SCOPES}
    )
    assert response.status_code == 200  # rendered in place, not redirected: nothing stores the key
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    shown = re.findall(keys.KEY_REGEX, page)
    assert len(set(shown)) == 1
    plaintext = shown[0]
    assert "shown only this once" in page

    key = APIKey.objects.get(name="from the admin")
    assert key.owner == user and key.key_hash == keys.hash_key(plaintext) and key.expires_at is not None
    assert key_works(plaintext)
    assert LogEntry.objects.filter(object_id=str(key.pk)).exists()

    # Never again: not on the change page, not in the list, not in the session.
    change = admin_client.get(reverse("admin:apikeys_apikey_change", args=[key.pk])).content.decode()
    assert plaintext not in change and key.key_hash not in change and key.prefix in change
    assert plaintext not in admin_client.get(CHANGELIST).content.decode()
    assert plaintext not in str(dict(admin_client.session))
    assert all(plaintext not in str(entry.__dict__) for entry in LogEntry.objects.all())


def test_add_form_without_expiry(admin_client, user):
    response = admin_client.post(ADD, {"owner": user.pk, "name": "forever", "expires_days": "", "scopes": ALL_SCOPES})
    assert response.status_code == 200
    assert APIKey.objects.get(name="forever").expires_at is None


def test_add_form_rejects_bad_input(admin_client, user):
    response = admin_client.post(ADD, {"owner": user.pk, "name": "", "expires_days": "0"})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not APIKey.objects.exists()


@override_settings(API_KEYS_MAX_ACTIVE_PER_USER=1)
def test_add_form_reports_the_cap(admin_client, user):
    APIKeyFactory(owner=user)
    response = admin_client.post(ADD, {"owner": user.pk, "name": "second"})
    assert response.status_code == 200
    assert "the most allowed" in response.content.decode()
    assert APIKey.objects.filter(owner=user).count() == 1


def test_change_form_edits_the_name_only(admin_client, user):
    key = APIKeyFactory(owner=user, name="old")
    url = reverse("admin:apikeys_apikey_change", args=[key.pk])
    response = admin_client.post(url, {"name": "new", "owner": admin_client.admin.pk, "key_hash": "0" * 64})
    assert response.status_code == 302
    key_after = APIKey.objects.get(pk=key.pk)
    assert key_after.name == "new" and key_after.owner == user and key_after.key_hash == key.key_hash
    assert key_works(key.plaintext)
