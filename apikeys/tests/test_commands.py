"""manage.py create_api_key and revoke_api_key."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from apikeys import keys
from apikeys.models import APIKey
from apikeys.tests.factories import APIKeyFactory

pytestmark = pytest.mark.django_db

PROTECTED = "/api/v1/hello/protected"


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def key_works(plaintext) -> bool:
    return Client(HTTP_X_API_KEY=plaintext).get(PROTECTED).status_code == 200


def test_create_prints_the_key_alone_on_stdout(user):
    out, err = run("create_api_key", "--username", "ALICE", "--name", "cron")
    plaintext = out.strip()
    assert re.fullmatch(keys.KEY_REGEX, plaintext)
    key = APIKey.objects.get(name="cron")
    assert key.owner == user and key.expires_at is None and key.key_hash == keys.hash_key(plaintext)
    assert key.prefix in err and "shown only this once" in err and plaintext not in err
    assert key_works(plaintext)


def test_create_with_expiry(user):
    out, err = run("create_api_key", "--username", "alice", "--name", "temp", "--expires-days", "3")
    assert APIKey.objects.get(name="temp").expires_at is not None and "expires" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--username", "nobody", "--name", "x"], "No user named"),
        (["--username", "alice", "--name", "   "], "name"),
        (["--username", "alice", "--name", "x", "--expires-days", "0"], "expires_days"),
        (["--username", "alice", "--name", "x", "--expires-days", "4000"], "expires_days"),
    ],
)
def test_create_errors(user, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not APIKey.objects.exists()


def test_create_refuses_an_inactive_user(make_user):
    make_user("gone", is_active=False)
    with pytest.raises(CommandError, match="inactive"):
        run("create_api_key", "--username", "gone", "--name", "x")


@override_settings(API_KEYS_MAX_ACTIVE_PER_USER=1)
def test_create_reports_the_cap(user):
    APIKeyFactory(owner=user)
    with pytest.raises(CommandError, match="the most allowed"):
        run("create_api_key", "--username", "alice", "--name", "x")


@pytest.mark.parametrize("how", ["id", "prefix", "full key"])
def test_revoke_by_id_prefix_or_full_key(user, how):
    key = APIKeyFactory(owner=user)
    other = APIKeyFactory(owner=user)
    reference = {"id": str(key.pk), "prefix": key.prefix, "full key": key.plaintext}[how]
    out, _ = run("revoke_api_key", reference)
    assert "Revoked API key" in out and key.plaintext not in out
    assert not key_works(key.plaintext) and key_works(other.plaintext)
    out, _ = run("revoke_api_key", reference)
    assert "already revoked" in out


def test_revoke_unknown_reference(user):
    for reference in ["sk_nothere", "424242", keys.generate(), "x" * 500]:
        with pytest.raises(CommandError, match="No API key matches"):
            run("revoke_api_key", reference)


def test_revoke_refuses_an_ambiguous_prefix(user, other_user):
    first, second = APIKeyFactory(owner=user), APIKeyFactory(owner=other_user)
    APIKey.objects.filter(pk=second.pk).update(prefix=first.prefix)
    with pytest.raises(CommandError, match="share the prefix"):
        run("revoke_api_key", first.prefix)
    assert key_works(first.plaintext) and key_works(second.plaintext)
