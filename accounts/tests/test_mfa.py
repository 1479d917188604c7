"""TOTP two-factor: setup, confirm, disable, recovery codes, the two-step login, replay, throttles, secrecy.

Codes are real RFC 6238 codes from pyotp at the real time. The server accepts the steps just before,
at and after now, each once and in increasing order (replay protection), so a test uses at most
three TOTP codes, oldest first (`codes`), and recovery codes beyond that.
"""

import base64
import io
import logging
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import AuthSession, MFAChallenge, RecoveryCode, SecurityEvent, TOTPDevice
from config import crypto
from conftest import TEST_PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keyring")]

LOGIN = "/api/v1/auth/login"
LOGIN_MFA = "/api/v1/auth/login/mfa"
TOKEN = "/api/v1/auth/token"
SETUP = "/api/v1/auth/mfa/totp/setup"
CONFIRM = "/api/v1/auth/mfa/totp/confirm"
TOTP = "/api/v1/auth/mfa/totp"
RECOVERY_CODES = "/api/v1/auth/mfa/recovery-codes"
REAUTH = "/api/v1/auth/reauth"
ME = "/api/v1/auth/me"
EVENTS = "/api/v1/auth/events"


def codes(secret: str) -> list[str]:
    """The codes of the previous, current and next 30-second steps, which the server accepts now, in the
    order they can be used. Waits for a new step when this one has under 5 s left, so that the three stay
    valid for the rest of a test."""
    if 30 - time.time() % 30 < 5:
        time.sleep(30 - time.time() % 30 + 0.1)
    totp = pyotp.TOTP(secret)
    now = time.time()
    return [totp.at(now - 30), totp.at(now), totp.at(now + 30)]


def enable(client) -> tuple[str, list[str], list[str]]:
    """Turn two-factor on for the client's user: (secret, the TOTP codes still usable, recovery codes)."""
    secret = client.post(SETUP).json()["secret"]
    usable = codes(secret)
    confirmed = client.post(CONFIRM, {"code": usable[0]}, format="json")
    assert confirmed.status_code == 200, confirmed.content
    return secret, usable[1:], confirmed.json()["recovery_codes"]


def password_step(api_client, user, **extra) -> dict:
    response = api_client.post(LOGIN, {"username": user.username, "password": TEST_PASSWORD}, format="json", **extra)
    assert response.status_code == 200
    return response.json()


def second_step(api_client, mfa_token: str, code: str, **extra):
    return api_client.post(LOGIN_MFA, {"mfa_token": mfa_token, "code": code}, format="json", **extra)


def age_sessions(user, minutes: int) -> None:
    AuthSession.objects.filter(user=user).update(authenticated_at=timezone.now() - timedelta(minutes=minutes))
    cache.clear()  # a cached session would still hold the old time


def event_types(user) -> list[str]:
    return list(SecurityEvent.objects.filter(user=user).values_list("type", flat=True))


def set_rate(settings, scope: str, rate: str) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], scope: rate},
    }


# SETUP, CONFIRM
# ------------------------------------------------------------------------------


def test_setup_gives_an_rfc6238_secret_that_is_not_active_until_confirmed(auth_client, user, api_client):
    response = auth_client.post(SETUP)

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"secret", "otpauth_url"}
    assert len(base64.b32decode(body["secret"])) == 20  # 160 bits
    url = urlsplit(body["otpauth_url"])
    assert (url.scheme, url.netloc, url.path) == ("otpauth", "totp", "/Gatehouse:alice")
    assert parse_qs(url.query)["issuer"] == ["Gatehouse"] and parse_qs(url.query)["secret"] == [body["secret"]]
    parsed = pyotp.parse_uri(body["otpauth_url"])
    assert (parsed.digits, parsed.interval, parsed.digest().name) == (6, 30, "sha1")

    assert auth_client.get(ME).json()["mfa_enabled"] is False
    assert "access_token" in password_step(api_client, user)  # not on yet: the password alone logs in


def test_a_new_setup_replaces_an_unconfirmed_one(auth_client):
    first = auth_client.post(SETUP).json()["secret"]
    second = auth_client.post(SETUP).json()["secret"]
    assert first != second and TOTPDevice.objects.count() == 1

    stale = auth_client.post(CONFIRM, {"code": codes(first)[1]}, format="json")
    assert stale.status_code == 400 and stale.json() == {"code": ["Incorrect two-factor code"]}
    assert auth_client.post(CONFIRM, {"code": codes(second)[1]}, format="json").status_code == 200


def test_confirm_turns_it_on_with_ten_recovery_codes_shown_once(auth_client, user):
    assert auth_client.post(CONFIRM, {"code": "123456"}, format="json").status_code == 400  # nothing set up
    secret = auth_client.post(SETUP).json()["secret"]
    assert auth_client.post(CONFIRM, {"code": "000000"}, format="json").status_code == 400

    response = auth_client.post(CONFIRM, {"code": codes(secret)[1]}, format="json")

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    recovery = response.json()["recovery_codes"]
    assert len(recovery) == len(set(recovery)) == 10
    assert all(len(code) == 19 and code.count("-") == 3 for code in recovery)
    assert auth_client.get(ME).json()["mfa_enabled"] is True
    assert event_types(user)[0] == "mfa_enabled"
    assert auth_client.post(SETUP).status_code == 409
    assert auth_client.post(CONFIRM, {"code": codes(secret)[2]}, format="json").status_code == 409


def test_mfa_endpoints_need_a_jwt(auth_client, api_client):
    key = auth_client.post("/api/v1/auth/api-keys", {"name": "k"}, format="json").json()["api_key"]
    with_key = APIClient()
    with_key.credentials(HTTP_X_API_KEY=key)
    assert with_key.post(SETUP).status_code == 403
    assert api_client.post(SETUP).status_code == 401
    assert api_client.post(CONFIRM, {"code": "123456"}, format="json").status_code == 401


# THE TWO-STEP LOGIN
# ------------------------------------------------------------------------------


def test_two_step_login_end_to_end(auth_client, user, api_client):
    _, totp, _ = enable(auth_client)
    sessions_before = AuthSession.objects.count()

    first = password_step(api_client, user, HTTP_USER_AGENT="curl/8.5")

    assert set(first) == {"mfa_required", "mfa_token", "methods"}
    assert first["mfa_required"] is True and first["methods"] == ["totp", "recovery_code"]
    assert AuthSession.objects.count() == sessions_before  # no session, no tokens yet

    response = second_step(api_client, first["mfa_token"], totp[0], HTTP_USER_AGENT="curl/8.5")

    assert response.status_code == 200
    assert set(response.json()) == {"access_token", "refresh_token", "token_type", "expires_in"}
    session = AuthSession.objects.order_by("-created_at").first()
    assert session.user_agent == "curl/8.5" and timezone.now() - session.authenticated_at < timedelta(seconds=5)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
    assert client.get(ME).json()["mfa_enabled"] is True
    login_event = SecurityEvent.objects.filter(user=user).first()
    assert login_event.type == "login" and login_event.detail == {"session": str(session.pk), "mfa": "totp"}
    # A fresh two-step login counts as a recent authentication: a sensitive action works at once.
    assert client.post("/api/v1/auth/api-keys", {"name": "ci"}, format="json").status_code == 201


def test_a_totp_code_is_accepted_once(auth_client, user, api_client):
    _, totp, _ = enable(auth_client)
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], totp[0]).status_code == 200

    replay = second_step(api_client, password_step(api_client, user)["mfa_token"], totp[0])

    assert replay.status_code == 401 and replay.json()["detail"] == "Incorrect two-factor code"
    failed = SecurityEvent.objects.filter(user=user).first()
    assert failed.type == "mfa_failed" and failed.detail == {"during": "login", "method": "totp"}


def test_an_older_code_after_a_newer_one_is_refused(auth_client, user, api_client):
    secret = auth_client.post(SETUP).json()["secret"]
    previous, current, _ = codes(secret)
    assert auth_client.post(CONFIRM, {"code": current}, format="json").status_code == 200
    # Still inside the window, but older than the step already used.
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], previous).status_code == 401


def test_a_recovery_code_works_once_as_typed_in_any_case_or_spacing(auth_client, user, api_client):
    _, _, recovery = enable(auth_client)
    typed = recovery[3].upper().replace("-", " ")

    assert second_step(api_client, password_step(api_client, user)["mfa_token"], typed).status_code == 200
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], recovery[3]).status_code == 401
    assert RecoveryCode.objects.filter(user=user, used_at__isnull=False).count() == 1
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], recovery[4]).status_code == 200


def test_the_mfa_token_works_once(auth_client, user, api_client):
    _, totp, recovery = enable(auth_client)
    mfa_token = password_step(api_client, user)["mfa_token"]
    assert second_step(api_client, mfa_token, totp[0]).status_code == 200

    again = second_step(api_client, mfa_token, recovery[0])

    assert again.status_code == 401 and "mfa_token" in again.json()["detail"]
    assert again.headers["WWW-Authenticate"].startswith("Bearer")
    assert not RecoveryCode.objects.filter(used_at__isnull=False).exists()  # the code was not spent on it


def test_the_mfa_token_expires_after_five_minutes(auth_client, user, api_client):
    _, _, recovery = enable(auth_client)
    first = password_step(api_client, user)
    challenge = MFAChallenge.objects.get(user=user)
    assert timedelta(minutes=4, seconds=55) < challenge.expires_at - challenge.created_at <= timedelta(minutes=5)
    MFAChallenge.objects.filter(pk=challenge.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert second_step(api_client, first["mfa_token"], recovery[0]).status_code == 401
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], recovery[0]).status_code == 200


def test_the_mfa_token_is_dead_after_five_wrong_codes(auth_client, user, api_client):
    _, totp, _ = enable(auth_client)
    mfa_token = password_step(api_client, user)["mfa_token"]
    wrong = "999999" if "999999" not in totp else "999998"

    statuses = [second_step(api_client, mfa_token, wrong).status_code for _ in range(5)]
    right_too_late = second_step(api_client, mfa_token, totp[0])

    assert statuses == [401] * 5
    assert right_too_late.status_code == 401 and "mfa_token" in right_too_late.json()["detail"]
    assert MFAChallenge.objects.get().attempts == 5
    assert event_types(user).count("mfa_failed") == 5
    # A new password step gives a new token, and the code (not spent on the dead token) still works.
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], totp[0]).status_code == 200


def test_codes_are_limited_per_account_across_tokens_and_addresses(auth_client, user, api_client, settings):
    enable(auth_client)
    cache.clear()  # the confirmation's code counted too; start the budget from zero
    set_rate(settings, "mfa_account", "3/min")
    tokens = [password_step(api_client, user)["mfa_token"] for _ in range(4)]

    statuses = [
        second_step(api_client, mfa_token, "111111", REMOTE_ADDR=f"198.51.100.{n}").status_code
        for n, mfa_token in enumerate(tokens)
    ]

    assert statuses == [401, 401, 401, 429]
    limited = second_step(api_client, tokens[3], "111111")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    # The same budget covers the account's other code-checking endpoints.
    assert auth_client.post(REAUTH, {"password": TEST_PASSWORD, "code": "111111"}, format="json").status_code == 429


def test_a_pending_login_dies_with_deactivation_and_logout_all(auth_client, user, api_client):
    _, _, recovery = enable(auth_client)
    pending = password_step(api_client, user)["mfa_token"]
    auth_client.post("/api/v1/auth/logout-all")
    assert second_step(api_client, pending, recovery[0]).status_code == 401

    pending = password_step(api_client, user)["mfa_token"]
    services.user_deactivate(user=user)
    assert second_step(api_client, pending, recovery[0]).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"mfa_token": "x"},
        {"code": "123456"},
        {"mfa_token": {"a": 1}, "code": "123456"},
        {"mfa_token": "x", "code": ["123456"]},
        {"mfa_token": "x", "code": "1" * 65},
        {"mfa_token": "x" * 201, "code": "123456"},
    ],
)
def test_malformed_second_steps_are_400(api_client, body):
    assert api_client.post(LOGIN_MFA, body, format="json").status_code == 400


@pytest.mark.parametrize("code", ["abcdef", "12345", "1234567", "\u0661\u0662\u0663\u0664\u0665\u0666", "' OR 1=1"])
def test_codes_of_no_known_shape_are_just_wrong(auth_client, user, api_client, code):
    enable(auth_client)
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], code).status_code == 401
    assert second_step(api_client, "not-a-token", code).status_code == 401


def test_the_oauth2_form_refuses_two_factor_users_and_says_where_to_go(auth_client, user, api_client):
    enable(auth_client)

    response = api_client.post(TOKEN, {"username": user.username, "password": TEST_PASSWORD}, format="json")

    assert response.status_code == 401
    assert "/api/v1/auth/login" in response.json()["detail"] and "login/mfa" in response.json()["detail"]
    assert "WWW-Authenticate" in response.headers
    assert not MFAChallenge.objects.exists()
    wrong = api_client.post(TOKEN, {"username": user.username, "password": "not the password"}, format="json")
    # Nothing told without the password.
    assert wrong.json() == {"detail": "Incorrect username or password", "code": "authentication_failed"}


def test_a_wrong_password_says_nothing_about_two_factor(auth_client, user, api_client):
    enable(auth_client)
    response = api_client.post(LOGIN, {"username": user.username, "password": "wrong-wrong"}, format="json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect username or password", "code": "authentication_failed"}
    assert not MFAChallenge.objects.exists()


# REAUTH, DISABLE, REGENERATE
# ------------------------------------------------------------------------------


def test_reauth_needs_the_code_when_two_factor_is_on(auth_client, user):
    _, totp, _ = enable(auth_client)
    age_sessions(user, 16)

    missing = auth_client.post(REAUTH, {"password": TEST_PASSWORD}, format="json")
    assert missing.status_code == 401 and "code" in missing.json()["detail"]
    assert auth_client.post(REAUTH, {"password": TEST_PASSWORD, "code": "000000"}, format="json").status_code == 401
    wrong_password = auth_client.post(REAUTH, {"password": "nope", "code": totp[0]}, format="json")
    assert wrong_password.status_code == 401
    assert auth_client.post("/api/v1/auth/api-keys", {"name": "k"}, format="json").status_code == 403

    assert auth_client.post(REAUTH, {"password": TEST_PASSWORD, "code": totp[0]}, format="json").status_code == 204
    assert auth_client.post("/api/v1/auth/api-keys", {"name": "k"}, format="json").status_code == 201
    assert event_types(user).count("mfa_failed") == 1  # the wrong code; a wrong password spends no code


def test_reauth_without_two_factor_ignores_the_code(auth_client, user):
    age_sessions(user, 16)
    assert auth_client.post(REAUTH, {"password": TEST_PASSWORD}, format="json").status_code == 204
    assert auth_client.post(REAUTH, {"password": TEST_PASSWORD, "code": ""}, format="json").status_code == 204


def test_disable_needs_a_recent_authentication_and_a_code(auth_client, user, api_client):
    _, totp, recovery = enable(auth_client)
    age_sessions(user, 16)

    late = auth_client.delete(TOTP, {"code": recovery[0]}, format="json")
    assert late.status_code == 403 and late.json()["code"] == "reauth_required"

    assert auth_client.post(REAUTH, {"password": TEST_PASSWORD, "code": totp[0]}, format="json").status_code == 204
    wrong = auth_client.delete(TOTP, {"code": "000000"}, format="json")
    assert wrong.status_code == 400 and wrong.json() == {"code": ["Incorrect two-factor code"]}
    assert auth_client.delete(TOTP, {"code": recovery[0]}, format="json").status_code == 204

    assert auth_client.get(ME).json()["mfa_enabled"] is False
    assert not TOTPDevice.objects.exists() and not RecoveryCode.objects.exists()
    assert event_types(user)[:2] == ["mfa_disabled", "mfa_failed"]
    assert "access_token" in password_step(api_client, user)
    assert auth_client.delete(TOTP, {"code": recovery[1]}, format="json").status_code == 400  # not on


def test_disable_with_a_totp_code(auth_client):
    _, totp, _ = enable(auth_client)
    assert auth_client.delete(TOTP, {"code": totp[0]}, format="json").status_code == 204


def test_regenerating_recovery_codes_kills_the_old_ones(auth_client, user, api_client):
    _, totp, old = enable(auth_client)
    age_sessions(user, 16)
    assert auth_client.post(RECOVERY_CODES, {"code": totp[0]}, format="json").json()["code"] == "reauth_required"
    auth_client.post(REAUTH, {"password": TEST_PASSWORD, "code": old[0]}, format="json")

    response = auth_client.post(RECOVERY_CODES, {"code": totp[0]}, format="json")

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    new = response.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert RecoveryCode.objects.filter(user=user).count() == 10
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], old[1]).status_code == 401
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], new[0]).status_code == 200
    assert auth_client.post(RECOVERY_CODES, {"code": "000000"}, format="json").status_code == 400


# SECRECY
# ------------------------------------------------------------------------------


def _rows(table: str) -> str:
    """Every column of every row of the table, as text (bytes as hex and as latin-1)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - a fixed table name
        values = [value for row in cursor.fetchall() for value in row]
    parts = []
    for value in values:
        if isinstance(value, memoryview | bytes):
            parts += [bytes(value).hex(), bytes(value).decode("latin-1")]
        else:
            parts.append(str(value))
    return " ".join(parts)


def test_secrets_are_not_stored_in_the_clear(auth_client, user, api_client):
    secret, _, recovery = enable(auth_client)
    mfa_token = password_step(api_client, user)["mfa_token"]

    devices = _rows("accounts_totpdevice")
    raw_secret = base64.b32decode(secret)
    assert secret not in devices and secret.lower() not in devices
    assert raw_secret.hex() not in devices and raw_secret.decode("latin-1") not in devices
    stored_codes = _rows("accounts_recoverycode")
    assert not any(code in stored_codes or code.replace("-", "") in stored_codes for code in recovery)
    assert mfa_token not in _rows("accounts_mfachallenge")


def test_a_sealed_secret_moved_to_another_account_does_not_open(auth_client, user, other_user, login, client_for):
    secret, _, _ = enable(auth_client)
    other = client_for(login(other_user).access)
    other.post(SETUP)
    mine = TOTPDevice.objects.get(user=user)
    # The attacker (with database access) copies alice's envelope onto bob's row and confirms with alice's code.
    TOTPDevice.objects.filter(user=other_user).update(
        kid=mine.kid, wrapped_key=mine.wrapped_key, nonce=mine.nonce, ciphertext=mine.ciphertext
    )
    assert other.post(CONFIRM, {"code": codes(secret)[2]}, format="json").status_code == 400


def test_no_secret_reaches_logs_events_or_later_responses(auth_client, user, api_client, caplog):
    caplog.set_level(logging.DEBUG)
    secret, totp, recovery = enable(auth_client)
    first = password_step(api_client, user)
    second_step(api_client, first["mfa_token"], "000000")
    done = second_step(api_client, first["mfa_token"], totp[0]).json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {done['access_token']}")
    client.post(REAUTH, {"password": TEST_PASSWORD, "code": recovery[0]}, format="json")
    later = [client.get(path).content.decode() for path in (ME, EVENTS, "/api/v1/auth/sessions")]
    client.delete(TOTP, {"code": recovery[1]}, format="json")

    secrets = [secret, first["mfa_token"], *totp, *recovery]
    events = " ".join(str(detail) for detail in SecurityEvent.objects.values_list("detail", flat=True))
    for value in secrets:
        assert value not in caplog.text
        assert value not in events
        assert not any(value in body for body in later)
    assert "mfa_failed" in later[1]


# CONCURRENCY
# ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_totp_code_used_twice_at_once_wins_exactly_once(user):
    secret = services.mfa_totp_setup(user=user).secret
    first, code, _ = codes(secret)
    services.mfa_totp_confirm(user=user, code=first)
    challenges = [services.mfa_challenge_issue(user=user).mfa_token for _ in range(8)]
    barrier = threading.Barrier(len(challenges))
    outcomes = []

    def use(mfa_token):
        try:
            barrier.wait()
            services.auth_login_mfa(mfa_token=mfa_token, code=code)
            outcomes.append("session")
        except services.AuthenticationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=use, args=(mfa_token,)) for mfa_token in challenges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["refused"] * 7 + ["session"]
    assert AuthSession.objects.filter(user=user).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_mfa_token_guessed_at_once_gets_five_attempts_in_all(user):
    secret = services.mfa_totp_setup(user=user).secret
    services.mfa_totp_confirm(user=user, code=codes(secret)[1])
    mfa_token = services.mfa_challenge_issue(user=user).mfa_token
    barrier = threading.Barrier(12)

    def guess():
        try:
            barrier.wait()
            services.auth_login_mfa(mfa_token=mfa_token, code="000000")
        except services.AuthenticationError:
            pass
        finally:
            connection.close()

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert MFAChallenge.objects.get().attempts == 5
    assert SecurityEvent.objects.filter(user=user, type="mfa_failed").count() == 5  # only 5 codes were looked at


# RSA KEY ROTATION
# ------------------------------------------------------------------------------


def test_a_key_rotation_reseals_totp_secrets_before_retiring_the_old_key(auth_client, user, api_client):
    _, totp, _ = enable(auth_client)
    old_kid = TOTPDevice.objects.get().kid
    new_kid = crypto.rotate()
    out = io.StringIO()

    call_command("reencrypt_provider_keys", stdout=out)

    assert "1 TOTP secret(s)" in out.getvalue() and crypto.keyring().kids == [new_kid] != [old_kid]
    assert TOTPDevice.objects.get().kid == new_kid
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], totp[0]).status_code == 200


def test_a_secret_whose_key_is_gone_fails_closed_without_a_500(auth_client, user, api_client, caplog):
    _, totp, recovery = enable(auth_client)
    TOTPDevice.objects.update(kid="0000000000000000")  # sealed with a key the keyring no longer has

    refused = second_step(api_client, password_step(api_client, user)["mfa_token"], totp[0])

    assert refused.status_code == 401
    assert "does not open" in caplog.text
    # The recovery codes (hashes, not sealed) still let the user in, to set two-factor up again.
    assert second_step(api_client, password_step(api_client, user)["mfa_token"], recovery[0]).status_code == 200
