from urllib.parse import urlencode

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.test import override_settings

from accounts.models import AuthSession, User

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
TOKEN = "/api/v1/auth/token"
STRONG = "violet-harbour-tangent-42"


def register(api_client, **overrides):
    body = {"username": "carol", "email": "carol@example.com", "password": STRONG, **overrides}
    return api_client.post(REGISTER, body, format="json")


def test_register_returns_the_new_account(api_client):
    response = register(api_client, name="Carol")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "email", "name", "date_joined"}
    assert body["username"] == "carol" and body["name"] == "Carol"
    assert User.objects.get(pk=body["id"]).check_password(STRONG)


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [("username", "Alice", "alice"), ("email", "Alice@Example.com", "alice@example.COM")],
)
def test_register_duplicate_is_409_regardless_of_case(api_client, field, first, second):
    assert register(api_client, **{field: first}).status_code == 201
    other = {"username": "dave", "email": "dave@example.com", field: second}
    response = register(api_client, **other)
    assert response.status_code == 409
    assert "already registered" in response.json()["detail"]


def test_case_insensitive_uniqueness_is_a_database_constraint(user):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="ALICE", email="someone@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="alice2", email="ALICE@example.com")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1", "too short"),
        ("password123", "too common"),
        ("8675309123", "entirely numeric"),
        ("carol123", "similar"),
    ],
)
def test_weak_passwords_are_400(api_client, password, reason):
    response = register(api_client, password=password)
    assert response.status_code == 400
    assert reason in " ".join(response.json()["password"])


@pytest.mark.parametrize(
    "body",
    [
        {"username": "x y", "email": "x@example.com", "password": STRONG},
        {"username": "carol", "email": "not-an-email", "password": STRONG},
        {"username": ["carol"], "email": "carol@example.com", "password": STRONG},
        {"username": "carol", "email": "carol@example.com"},
    ],
)
def test_invalid_registration_is_400_with_field_messages(api_client, body):
    response = api_client.post(REGISTER, body, format="json")
    assert response.status_code == 400
    assert set(response.json()) & {"username", "email", "password"}


@pytest.mark.parametrize(
    "raw",
    [
        '{"username": ' * 5000 + "1" + "}" * 5000,
        "{not json",
        '{"username": "a"',
        "\xff\xfe",
        "[1, 2]",
        '"just a string"',
    ],
)
def test_malformed_or_deeply_nested_json_is_400(api_client, raw):
    response = api_client.generic(
        "POST", REGISTER, raw.encode("utf-8", "surrogatepass"), content_type="application/json"
    )
    assert response.status_code == 400


def test_login_with_username_or_email_json_or_form(api_client, user, password):
    for body, fmt in [
        ({"username": "alice", "password": password}, "json"),
        ({"username": "ALICE@example.com", "password": password}, "json"),
        ({"username_or_email": "alice@example.com", "password": password}, "json"),
        ({"username": "alice", "password": password}, None),
    ]:
        if fmt:
            response = api_client.post(LOGIN, body, format=fmt)
        else:  # a form (there is no multipart parser)
            response = api_client.post(LOGIN, urlencode(body), content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200, body
        tokens = response.json()
        assert tokens["token_type"] == "bearer"
        assert tokens["expires_in"] == 30 * 60
        assert tokens["access_token"] and tokens["refresh_token"]
    assert AuthSession.objects.filter(user=user).count() == 4


def test_oauth2_token_endpoint_takes_the_password_form(api_client, user, password):
    response = api_client.post(
        TOKEN,
        f"grant_type=password&username=alice&password={password.replace(' ', '+')}",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"


class CountingHasher(MD5PasswordHasher):
    calls = 0

    def encode(self, password, salt):
        CountingHasher.calls += 1
        return super().encode(password, salt)


@override_settings(PASSWORD_HASHERS=["accounts.tests.test_register_login.CountingHasher"])
@pytest.mark.parametrize("case", ["unknown user", "wrong password", "inactive user"])
def test_failed_logins_look_the_same_and_hash_once(api_client, make_user, case):
    make_user("erin", password=STRONG, is_active=case != "inactive user")
    username = "nobody" if case == "unknown user" else "erin"
    password = "wrong-password-1" if case == "wrong password" else STRONG
    CountingHasher.calls = 0
    response = api_client.post(LOGIN, {"username": username, "password": password}, format="json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect username or password", "code": "authentication_failed"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert CountingHasher.calls == 1


def test_long_unicode_password_is_never_truncated(api_client, make_user):
    password = "Ünïcødé-🔐-" + "x" * 90  # 100 characters, far over bcrypt's 72 bytes
    assert len(password) == 100
    make_user("frank", password=password)
    ok = api_client.post(LOGIN, {"username": "frank", "password": password}, format="json")
    assert ok.status_code == 200
    prefix = password.encode()[:72].decode(errors="ignore")
    assert api_client.post(LOGIN, {"username": "frank", "password": prefix}, format="json").status_code == 401


def test_argon2id_is_the_default_hasher_and_bcrypt_hashes_upgrade_on_login(api_client, settings, make_user):
    from django.conf import settings as live
    from django.contrib.auth.hashers import make_password

    settings.PASSWORD_HASHERS = live.PASSWORD_HASHERS[1:]  # the production list, without the test-only MD5
    assert make_password("whatever-123").startswith("argon2$argon2id$")
    user = make_user("grace")
    user.password = make_password(STRONG, hasher="bcrypt")
    user.save()
    assert api_client.post(LOGIN, {"username": "grace", "password": STRONG}, format="json").status_code == 200
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")


def test_legacy_bcrypt_hash_with_over_long_password_fails_cleanly(settings):
    from django.contrib.auth.hashers import check_password, make_password

    encoded = make_password(STRONG, hasher="bcrypt")
    assert check_password(STRONG, encoded)
    assert check_password("y" * 100, encoded) is False


def test_throttled_login_is_429_with_retry_after(api_client, settings, user):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login_account": "3/min"},
    }
    statuses = [
        api_client.post(
            LOGIN, {"username": "alice", "password": "nope-nope-1"}, format="json", REMOTE_ADDR=f"10.0.0.{i}"
        ).status_code
        for i in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    response = api_client.post(LOGIN, {"username": "ALICE", "password": "x"}, format="json", REMOTE_ADDR="10.0.0.9")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


def test_login_is_throttled_per_address(api_client, settings, make_user):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login_address": "2/min"},
    }
    statuses = [
        api_client.post(LOGIN, {"username": f"u{i}", "password": "x"}, format="json").status_code for i in range(3)
    ]
    assert statuses == [401, 401, 429]
    form = urlencode({"username": "u9", "password": "x"})
    assert api_client.post(TOKEN, form, content_type="application/x-www-form-urlencoded").status_code == 429
