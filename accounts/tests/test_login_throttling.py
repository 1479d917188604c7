"""Login throttles as an attacker meets them: failures counted per account and per (account, address),
successes free, the owner's usual address still let in, identifiers normalised before they are counted;
password and email changes limited per account."""

from urllib.parse import urlencode

import pytest

from accounts.models import SecurityEvent
from conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
TOKEN = "/api/v1/auth/token"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def rates(settings):
    """Set some throttle rates for the test (the test settings make every one generous)."""

    def set_rates(**scopes):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **scopes},
        }

    return set_rates


def attempt(api_client, username, password, address):
    return api_client.post(
        LOGIN, {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    ).status_code


def test_successful_logins_do_not_spend_the_account_budget(api_client, rates, user):
    # The old per-username scope and the new ones alike: only failures may count.
    rates(login_username="3/min", login_account="3/min", login_account_address="3/min")
    statuses = [attempt(api_client, "alice", TEST_PASSWORD, f"10.0.0.{n}") for n in range(6)]
    assert statuses == [200] * 6


def test_a_guesser_at_one_address_is_stopped_but_others_are_not(api_client, rates, user):
    rates(login_account_address="3/min", login_account="100/min")
    guesses = [attempt(api_client, "alice", "wrong-guess", "10.6.6.6") for _ in range(4)]
    assert guesses == [401, 401, 401, 429]
    # The right password from that address is refused too: the bucket is spent before the password is looked at.
    assert attempt(api_client, "alice", TEST_PASSWORD, "10.6.6.6") == 429
    assert attempt(api_client, "alice", TEST_PASSWORD, "10.0.0.1") == 200


def test_a_distributed_guesser_cannot_lock_the_owner_out_of_their_usual_address(api_client, rates, user):
    assert attempt(api_client, "alice", TEST_PASSWORD, "10.0.0.1") == 200  # the owner's usual address
    rates(login_account="3/min", login_account_address="100/min")
    guesses = [attempt(api_client, "alice", "wrong-guess", f"10.6.6.{n}") for n in range(4)]
    assert guesses == [401, 401, 401, 429]
    assert attempt(api_client, "alice", "wrong-guess", "10.6.6.99") == 429  # a new address: locked out
    assert attempt(api_client, "alice", TEST_PASSWORD, "10.0.0.77") == 429  # so is the right password from there
    assert attempt(api_client, "alice", TEST_PASSWORD, "10.0.0.1") == 200  # the owner, from where they log in


def test_spellings_of_one_account_share_its_bucket(api_client, rates, user):
    rates(login_account_address="4/min")
    spellings = ["alice", "ALICE", "\uff41\uff4c\uff49\uff43\uff45", "Alice@Example.com"]  # fullwidth "alice"
    assert [attempt(api_client, name, "wrong-guess", "10.6.6.6") for name in spellings] == [401] * 4
    assert attempt(api_client, "aLiCe", "wrong-guess", "10.6.6.6") == 429


def test_a_compatibility_spelling_finds_the_account(api_client, user):
    """NFKC before the lookup: the fullwidth spelling is the same username (stored usernames are NFKC)."""
    assert attempt(api_client, "\uff41\uff4c\uff49\uff43\uff45", TEST_PASSWORD, "10.0.0.1") == 200


def test_unknown_accounts_are_throttled_like_known_ones(api_client, rates, user):
    """Otherwise the first 429 would tell which usernames exist."""
    rates(login_account_address="3/min")
    for name in ("alice", "ghost"):
        spellings = [name, name.upper(), "".join(chr(ord(c) + 0xFEE0) for c in name), name.title()]
        assert [attempt(api_client, s, "wrong-guess", "10.6.6.6") for s in spellings] == [401, 401, 401, 429]


def test_the_oauth2_form_counts_against_the_same_failures(api_client, rates, user):
    rates(login_account_address="2/min")
    assert attempt(api_client, "alice", "wrong-guess", "10.6.6.6") == 401
    form = api_client.post(TOKEN, "username=alice&password=wrong", content_type=FORM, REMOTE_ADDR="10.6.6.6")
    assert form.status_code == 401
    right = urlencode({"username": "alice", "password": TEST_PASSWORD})
    limited = api_client.post(TOKEN, right, content_type=FORM, REMOTE_ADDR="10.6.6.6")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0


def test_a_wrong_password_is_a_login_failed_event_for_the_account(api_client, user):
    assert attempt(api_client, "ALICE", "wrong-guess", "10.6.6.6") == 401
    assert attempt(api_client, "ghost", "wrong-guess", "10.6.6.6") == 401
    events = list(SecurityEvent.objects.filter(type="login_failed"))
    assert [(e.user_id, e.ip_address) for e in events] == [(user.pk, "10.6.6.6")]
    assert "wrong-guess" not in str(events[0].detail)


def test_password_change_is_throttled_per_account(auth_client, rates):
    rates(password_change_user="2/min")
    body = {"current_password": "not-it", "new_password": "violet-harbour-tangent-42"}
    statuses = [auth_client.post("/api/v1/auth/password/change", body, format="json").status_code for _ in range(3)]
    assert statuses == [400, 400, 429]


def test_email_change_is_throttled_per_account(auth_client, rates):
    rates(email_change_user="2/min")
    statuses = [
        auth_client.patch("/api/v1/auth/me", {"email": f"new{n}@example.com"}, format="json").status_code
        for n in range(3)
    ]
    assert statuses[2] == 429
    # Profile edits that leave the email alone are not counted.
    assert auth_client.patch("/api/v1/auth/me", {"name": "Alice B"}, format="json").status_code == 200
