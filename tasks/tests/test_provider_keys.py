"""Provider keys and the RSA keyring: the public key, storing keys (plain and encrypted, also with the
openssl CLI as the docs show), every refusal, ownership, the plaintext kept out of the database, logs
and responses, rotation and re-encryption, the key a run gets, the original system's private_key.pem."""

import base64
import hashlib
import io
import logging
import os
import shutil
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from apikeys.tests.factories import APIKeyFactory, x_api_key
from config import crypto
from config.errors import InvalidInput
from tasks import checks, services
from tasks.models import ProviderKey, Task
from tasks.tests.factories import TaskFactory

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/provider-keys"
PUBLIC_KEY = "/api/v1/crypto/public-key"
SECRET = "sk-proj-Zq8rT3stK3yThatMustN3v3rLeak9w2x"
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def pem_of(private: rsa.RSAPrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="session")
def rsa_pem() -> bytes:
    """One 2048-bit key for the session (generating one per test would cost more than the tests)."""
    return pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def keyring_file(settings, tmp_path, rsa_pem) -> Path:
    """RSA_PRIVATE_KEY_FILE in tmp_path, holding the session's key: the real var/ file is never written."""
    path = tmp_path / "keys" / "rsa_private_key.pem"
    path.parent.mkdir()
    path.write_bytes(rsa_pem)
    path.chmod(0o600)
    settings.RSA_PRIVATE_KEY_FILE = str(path)
    return path


@pytest.fixture
def public_key(api_client, keyring_file) -> dict:
    response = api_client.get(PUBLIC_KEY)
    assert response.status_code == 200
    return response.json()


def encrypt_for(public_pem: str, plaintext: str) -> str:
    key = serialization.load_pem_public_key(public_pem.encode())
    return base64.b64encode(key.encrypt(plaintext.encode(), OAEP)).decode()


def store(client, **fields):
    return client.post(KEYS, {"provider": "openai", **fields}, format="json")


def no_secret_in(response, secret=SECRET):
    assert secret not in response.content.decode(), response.content


# THE PUBLIC KEY AND THE KEYRING
# ------------------------------------------------------------------------------


def test_public_key_is_public_and_names_its_key(api_client, keyring_file, rsa_pem):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")  # a stale token does not make it fail
    response = api_client.get(PUBLIC_KEY)

    assert response.status_code == 200
    body = response.json()
    assert body["algorithm"] == "RSA-OAEP-256"
    served = serialization.load_pem_public_key(body["public_key"].encode())
    ours = serialization.load_pem_private_key(rsa_pem, password=None).public_key()
    assert served.public_numbers() == ours.public_numbers()
    der = ours.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert body["kid"] == hashlib.sha256(der).hexdigest()[:16]
    assert body["public_key"].startswith("-----BEGIN PUBLIC KEY-----")


def test_a_missing_keyring_is_generated_once_private_and_race_free(settings, tmp_path):
    path = tmp_path / "var" / "rsa_private_key.pem"
    settings.RSA_PRIVATE_KEY_FILE = str(path)
    kids, errors = [], []

    def first_use():
        try:
            kids.append(crypto.public_key().kid)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors and len(set(kids)) == 1  # every racer ended with the one key that was linked first
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(crypto.keyring().keys) == 1 and crypto.keyring().current.private.key_size == crypto.GENERATED_KEY_BITS
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_the_keyring_is_reloaded_when_the_file_changes(keyring_file):
    before = crypto.public_key().kid
    other = pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    keyring_file.write_bytes(keyring_file.read_bytes() + other)  # another process appending a key

    assert crypto.public_key().kid != before  # the last key of the file is current
    assert crypto.keyring().kids[0] == before


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "holds no PEM private key"),
        (pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "at least 2048"),  # noqa: S505
        (pem_of(ec.generate_private_key(ec.SECP256R1())), "not an RSA key"),
        (
            rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"passphrase"),
            ),
            "passphrase-protected",
        ),
    ],
    ids=["empty", "small", "ec", "encrypted"],
)
def test_an_unusable_keyring_is_a_clear_error(settings, tmp_path, content, message):
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    settings.RSA_PRIVATE_KEY_FILE = str(path)

    with pytest.raises(crypto.KeyringError, match=message):
        crypto.public_key()


def test_envelope_opens_only_unaltered_and_in_its_own_context(keyring_file):
    sealed = crypto.seal(b"top secret", associated_data=b"row 1")

    assert crypto.unseal(sealed, associated_data=b"row 1") == b"top secret"
    assert b"top secret" not in sealed.ciphertext and "top secret" not in repr(sealed)
    with pytest.raises(crypto.DecryptionFailed):
        crypto.unseal(sealed, associated_data=b"row 2")
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(crypto.DecryptionFailed):
        crypto.unseal(crypto.Sealed(sealed.kid, sealed.wrapped_key, sealed.nonce, flipped), associated_data=b"row 1")
    with pytest.raises(crypto.UnknownKeyId):
        crypto.unseal(crypto.Sealed("0" * 16, sealed.wrapped_key, sealed.nonce, sealed.ciphertext))


def test_the_current_key_cannot_be_retired(keyring_file):
    with pytest.raises(crypto.KeyringError, match="current key"):
        crypto.retire([crypto.public_key().kid])


def test_system_check_warns_about_the_generated_keyring_outside_development(settings, tmp_path):
    settings.DEBUG = False
    settings.RSA_PRIVATE_KEY_FILE = str(Path(settings.VAR_DIR) / "rsa_private_key.pem")
    assert [warning.id for warning in checks.rsa_keyring_check(None)] == ["tasks.W001"]

    settings.RSA_PRIVATE_KEY_FILE = str(tmp_path / "shared" / "keyring.pem")
    assert checks.rsa_keyring_check(None) == []
    settings.RSA_PRIVATE_KEY_FILE = str(Path(settings.VAR_DIR) / "keys" / "rsa_private_key.pem")  # a shared volume
    assert checks.rsa_keyring_check(None) == []
    settings.RSA_PRIVATE_KEY_FILE = str(Path(settings.VAR_DIR) / "rsa_private_key.pem")
    settings.DEBUG = True
    assert checks.rsa_keyring_check(None) == []


# STORING A KEY
# ------------------------------------------------------------------------------


def test_store_an_encrypted_key(auth_client, user, public_key):
    response = store(
        auth_client, name="work", encrypted_api_key=encrypt_for(public_key["public_key"], SECRET), kid=public_key["kid"]
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "provider", "name", "base_url", "hint", "created_at", "last_used"}
    assert body["provider"] == "openai" and body["name"] == "work" and body["hint"] == SECRET[-4:]
    assert body["base_url"] == "" and body["last_used"] is None
    no_secret_in(response)
    run_key = services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=body["id"])
    assert run_key.api_key == SECRET and SECRET not in repr(run_key)


def test_store_a_key_encrypted_with_the_openssl_cli_as_the_docs_show(auth_client, user, public_key, tmp_path):
    (tmp_path / "public.pem").write_text(public_key["public_key"])
    encrypted = subprocess.run(  # noqa: S602 -- the documented pipeline; the key is passed in the environment
        'printf %s "$KEY" | openssl pkeyutl -encrypt -pubin -inkey public.pem '
        "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 | base64",
        shell=True,
        cwd=tmp_path,
        env={**os.environ, "KEY": SECRET},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "\n" in encrypted.strip()  # base64 wraps its lines: the service must take them as they come

    response = store(auth_client, provider="anthropic", encrypted_api_key=encrypted, kid=public_key["kid"])

    assert response.status_code == 201, response.content
    run_key = services.provider_key_for_run(owner_id=user.pk, provider="anthropic", provider_key_id=None)
    assert run_key.api_key == SECRET


def test_store_a_plain_key_trimmed(auth_client, user, keyring_file):
    response = store(auth_client, api_key=f"  {SECRET}\n")

    assert response.status_code == 201
    no_secret_in(response)
    assert services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=None).api_key == SECRET


def test_a_short_key_gets_no_hint(auth_client, keyring_file):
    response = store(auth_client, provider="openai_compatible", base_url="http://127.0.0.1:11434/v1", api_key="ollama")

    assert response.status_code == 201 and response.json()["hint"] == ""


@pytest.mark.parametrize(
    "fields, named",
    [
        ({}, {"api_key", "encrypted_api_key"}),
        ({"api_key": SECRET, "encrypted_api_key": "AAAA"}, {"api_key", "encrypted_api_key"}),
        ({"api_key": "   "}, {"api_key"}),
        ({"api_key": "has a space"}, {"api_key"}),
        ({"api_key": "clé-non-ascii-1234"}, {"api_key"}),
        ({"api_key": "x" * 1001}, {"api_key"}),
        ({"api_key": SECRET, "provider": "none"}, {"provider"}),
        ({"api_key": SECRET, "name": "n" * 101}, {"name"}),
        ({"encrypted_api_key": "not base64 !!"}, {"encrypted_api_key"}),
        ({"encrypted_api_key": "QUJD"}, {"encrypted_api_key"}),  # valid base64, far too short for RSA
        ({"encrypted_api_key": SECRET, "kid": "0123456789abcdef"}, {"kid", "encrypted_api_key"}),
    ],
    ids=[
        "neither",
        "both",
        "blank",
        "space",
        "non-ascii",
        "too-long",
        "provider-none",
        "long-name",
        "bad-b64",
        "short",
        "kid",
    ],
)
def test_bad_input_is_a_400_naming_the_field(auth_client, keyring_file, fields, named):
    response = store(auth_client, **fields)

    assert response.status_code == 400, response.content
    assert set(response.json()) & named, response.json()
    assert not ProviderKey.objects.exists()


def test_a_ciphertext_that_does_not_decrypt_is_a_400_that_does_not_echo_it(auth_client, public_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    ours = serialization.load_pem_public_key(public_key["public_key"].encode())
    attempts = {
        "another key": base64.b64encode(other.encrypt(SECRET.encode(), OAEP)).decode(),
        "PKCS#1 v1.5 padding": base64.b64encode(ours.encrypt(SECRET.encode(), padding.PKCS1v15())).decode(),
        "random bytes": base64.b64encode(os.urandom(256)).decode(),
    }
    for what, ciphertext in attempts.items():
        response = store(auth_client, encrypted_api_key=ciphertext, kid=public_key["kid"])
        assert response.status_code == 400, what
        assert list(response.json()) == ["encrypted_api_key"], what
        assert ciphertext not in response.content.decode() and ciphertext[:40] not in response.content.decode()
    assert not ProviderKey.objects.exists()


def test_an_unknown_kid_is_a_400(auth_client, public_key):
    response = store(
        auth_client, encrypted_api_key=encrypt_for(public_key["public_key"], SECRET), kid="ffffffffffffffff"
    )

    assert response.status_code == 400 and list(response.json()) == ["kid"]


def test_without_kid_the_keyring_is_tried(auth_client, public_key):
    response = store(auth_client, encrypted_api_key=encrypt_for(public_key["public_key"], SECRET))

    assert response.status_code == 201


@pytest.mark.parametrize(
    "provider, base_url",
    [
        ("openai_compatible", ""),
        ("openai_compatible", "ftp://models.example.com/v1"),
        ("openai", "file:///etc/passwd"),
        ("openai_compatible", "http://10.0.0.1:8000/v1"),
        ("openai_compatible", "http://169.254.169.254/latest/meta-data/"),
        ("openai_compatible", "http://[::ffff:10.0.0.1]/v1"),
        ("openai_compatible", "http://127.0.0.2:11434/v1"),  # loopback, but not the allowlisted address
        ("openai_compatible", "http://user:pass@127.0.0.1:11434/v1"),
        ("openai", "https://api.example.com/v1?key=x"),
    ],
)
def test_a_missing_bad_or_refused_base_url_is_a_400(auth_client, keyring_file, provider, base_url):
    response = store(auth_client, provider=provider, base_url=base_url, api_key=SECRET)

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["base_url"]


def test_a_loopback_base_url_needs_the_allowlist(auth_client, keyring_file, settings):
    local = {"provider": "openai_compatible", "base_url": "http://127.0.0.1:11434/v1", "api_key": SECRET}
    assert store(auth_client, **local).status_code == 201  # the test settings allow 127.0.0.1

    settings.EGRESS_ALLOWLIST = []
    refused = store(auth_client, **local)
    assert refused.status_code == 400 and "loopback" in refused.json()["base_url"][0]


# LIST, DELETE, WHO MAY
# ------------------------------------------------------------------------------


def test_list_shows_only_mine_newest_first(auth_client, user, other_user, keyring_file, django_assert_max_num_queries):
    mine = [services.provider_key_create(owner=user, provider="openai", api_key=f"{SECRET}{n}") for n in range(3)]
    services.provider_key_create(owner=other_user, provider="openai", api_key=SECRET)

    with django_assert_max_num_queries(4):  # session auth, count, page
        response = auth_client.get(KEYS)

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [key.pk for key in reversed(mine)]
    no_secret_in(response)


def test_another_users_key_is_not_found(auth_client, other_user, keyring_file):
    theirs = services.provider_key_create(owner=other_user, provider="openai", api_key=SECRET)

    assert auth_client.delete(f"{KEYS}/{theirs.pk}").status_code == 404
    assert ProviderKey.objects.filter(pk=theirs.pk).exists()


def test_delete_my_key(auth_client, user, keyring_file):
    key = services.provider_key_create(owner=user, provider="openai", api_key=SECRET)

    assert auth_client.delete(f"{KEYS}/{key.pk}").status_code == 204
    assert not ProviderKey.objects.filter(pk=key.pk).exists()
    with pytest.raises(InvalidInput) as refused:  # a task naming it now fails at initiate, never falls back
        services.provider_key_check(owner_id=user.pk, provider="openai", provider_key_id=key.pk)
    assert "provider_key_id" in refused.value.detail


def test_an_api_key_may_list_but_not_store_or_delete(user, keyring_file):
    key = services.provider_key_create(owner=user, provider="openai", api_key=SECRET)
    client = x_api_key(APIKeyFactory(owner=user).plaintext)

    assert client.get(KEYS).status_code == 200
    assert store(client, api_key=SECRET).status_code == 403
    assert client.delete(f"{KEYS}/{key.pk}").status_code == 403
    assert ProviderKey.objects.count() == 1


def test_anonymous_is_401(api_client, keyring_file):
    assert api_client.get(KEYS).status_code == 401
    assert store(api_client, api_key=SECRET).status_code == 401


# THE PLAINTEXT NOWHERE
# ------------------------------------------------------------------------------


def _every_column_of(key_id: int) -> list[bytes]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ProviderKey._meta.db_table} WHERE id = %s", [key_id])  # noqa: S608
        row = cursor.fetchone()
    return [bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode() for value in row]


def test_the_key_is_in_no_column_log_or_response(auth_client, user, public_key, caplog):
    encrypted = encrypt_for(public_key["public_key"], SECRET)
    with caplog.at_level(logging.DEBUG):
        created = store(auth_client, encrypted_api_key=encrypted, kid=public_key["kid"])
        plain = store(auth_client, provider="anthropic", api_key=SECRET)
        listed = auth_client.get(KEYS)
        services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=None)

    for response in (created, plain, listed):
        no_secret_in(response)
    for key_id in (created.json()["id"], plain.json()["id"]):
        for column in _every_column_of(key_id):
            assert SECRET.encode() not in column and SECRET[:12].encode() not in column
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert SECRET not in logged and SECRET[:12] not in logged and encrypted[:40] not in logged


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_key_is_not_in_a_dump_of_the_database(auth_client, user, keyring_file):
    assert store(auth_client, api_key=SECRET).status_code == 201
    settings_dict = connection.settings_dict
    environment = {**os.environ, "PGPASSWORD": settings_dict.get("PASSWORD") or ""}
    dump = subprocess.run(
        [
            shutil.which("pg_dump") or "pg_dump",
            *("--host", settings_dict.get("HOST") or "127.0.0.1", "--port", str(settings_dict.get("PORT") or 5432)),
            *("--username", settings_dict["USER"], "--data-only", settings_dict["NAME"]),
        ],
        env=environment,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout

    assert b"provider_key" in dump.lower()  # the dump is of the right database
    assert SECRET.encode() not in dump and SECRET[:12].encode() not in dump


def test_envelopes_do_not_open_on_another_users_row(user, other_user, keyring_file):
    """A database attacker who copies a user's sealed key onto their own row gets nothing."""
    victim = services.provider_key_create(owner=user, provider="openai", api_key=SECRET)
    thief = services.provider_key_create(owner=other_user, provider="openai", api_key="sk-their-own-key-1234")
    ProviderKey.objects.filter(pk=thief.pk).update(
        kid=victim.kid, wrapped_key=victim.wrapped_key, nonce=victim.nonce, ciphertext=victim.ciphertext
    )

    with pytest.raises(InvalidInput) as refused:
        services.provider_key_for_run(owner_id=other_user.pk, provider="openai", provider_key_id=thief.pk)
    assert "no longer be decrypted" in str(refused.value.detail)


# ROTATION AND RE-ENCRYPTION
# ------------------------------------------------------------------------------


def _command(name: str, *args) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out, stderr=out)
    return out.getvalue()


def test_rotate_then_reencrypt(auth_client, api_client, user, public_key, keyring_file):
    old_kid, old_public = public_key["kid"], public_key["public_key"]
    stored = services.provider_key_create(owner=user, provider="openai", api_key=SECRET)
    assert stored.kid == old_kid

    printed = _command("rotate_rsa_key")

    new_kid = api_client.get(PUBLIC_KEY).json()["kid"]
    assert new_kid != old_kid and new_kid in printed
    assert keyring_file.stat().st_mode & 0o777 == 0o600
    # Before re-encryption: the old kid still decrypts, what is stored still opens, new keys use the new kid.
    late = store(auth_client, provider="anthropic", encrypted_api_key=encrypt_for(old_public, SECRET), kid=old_kid)
    assert late.status_code == 201
    # ...and so without a kid: the current key is tried, then the older ones.
    assert (
        store(auth_client, provider="anthropic", encrypted_api_key=encrypt_for(old_public, SECRET)).status_code == 201
    )
    assert ProviderKey.objects.get(pk=late.json()["id"]).kid == new_kid
    assert services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=None).api_key == SECRET

    printed = _command("reencrypt_provider_keys")

    assert "Re-encrypted 1 provider key(s)" in printed and f"Retired 1 older RSA key(s): {old_kid}" in printed
    assert set(ProviderKey.objects.values_list("kid", flat=True)) == {new_kid}
    assert crypto.keyring().kids == [new_kid]
    assert services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=None).api_key == SECRET
    # After retirement the old public key is of no use.
    refused = store(auth_client, encrypted_api_key=encrypt_for(old_public, SECRET), kid=old_kid)
    assert refused.status_code == 400 and list(refused.json()) == ["kid"]
    assert store(auth_client, encrypted_api_key=encrypt_for(old_public, SECRET)).status_code == 400
    assert "Re-encrypted 0 provider key(s)" in _command("reencrypt_provider_keys")  # a second run moves nothing


def test_reencrypt_keep_old_leaves_the_old_key_decrypting(user, keyring_file):
    services.provider_key_create(owner=user, provider="openai", api_key=SECRET)
    old_kid = crypto.public_key().kid
    _command("rotate_rsa_key")

    printed = _command("reencrypt_provider_keys", "--keep-old")

    assert "Re-encrypted 1" in printed and "Kept 1 older" in printed
    assert old_kid in crypto.keyring().kids
    assert ProviderKey.objects.get().kid == crypto.public_key().kid


def test_a_row_that_does_not_open_keeps_its_rsa_key(user, keyring_file):
    good = services.provider_key_create(owner=user, provider="openai", api_key=SECRET)
    broken = services.provider_key_create(owner=user, provider="anthropic", api_key=SECRET)
    old_kid = good.kid
    ProviderKey.objects.filter(pk=broken.pk).update(ciphertext=b"\x00" * len(broken.ciphertext))
    _command("rotate_rsa_key")

    printed = _command("reencrypt_provider_keys")

    assert "Re-encrypted 1" in printed and "Retired 0" in printed
    assert old_kid in crypto.keyring().kids  # retiring it would lose the row for good


# THE KEY A RUN GETS
# ------------------------------------------------------------------------------


def test_for_run_takes_the_named_key_else_the_newest(user, keyring_file):
    older = services.provider_key_create(owner=user, provider="openai", api_key="sk-older-key-0000")
    newer = services.provider_key_create(
        owner=user, provider="openai", api_key="sk-newer-key-1111", base_url="https://llm.example.com/v1"
    )

    named = services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=older.pk)
    newest = services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=None)

    assert (named.api_key, named.provider_key_id, named.base_url) == ("sk-older-key-0000", older.pk, "")
    assert (newest.api_key, newest.provider_key_id) == ("sk-newer-key-1111", newer.pk)
    assert newest.base_url == "https://llm.example.com/v1" and newest.base_url_trusted is False


def test_for_run_falls_back_to_the_servers_key(user, keyring_file, settings):
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-server-owned-9999", "http://10.1.2.3/v1"
    settings.ANTHROPIC_API_KEY = "sk-ant-server-8888"

    openai = services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=None)
    anthropic = services.provider_key_for_run(owner_id=user.pk, provider="anthropic", provider_key_id=None)

    assert (openai.api_key, openai.base_url, openai.base_url_trusted) == (
        "sk-server-owned-9999",
        "http://10.1.2.3/v1",
        True,
    )
    assert openai.provider_key_id is None and anthropic.api_key == "sk-ant-server-8888"
    services.provider_key_check(owner_id=user.pk, provider="anthropic", provider_key_id=None)
    with pytest.raises(InvalidInput) as refused:  # no server key for an arbitrary server
        services.provider_key_for_run(owner_id=user.pk, provider="openai_compatible", provider_key_id=None)
    assert "POST /api/v1/provider-keys" in refused.value.detail["llm_provider"][0]


def test_no_key_at_all_names_llm_provider(user, keyring_file, settings):
    settings.OPENAI_API_KEY = ""
    for check in (services.provider_key_check, services.provider_key_for_run):
        with pytest.raises(InvalidInput) as refused:
            check(owner_id=user.pk, provider="openai", provider_key_id=None)
        assert list(refused.value.detail) == ["llm_provider"]
        assert refused.value.detail["llm_provider"][0].startswith("No API key for openai: add one with POST")
    services.provider_key_check(owner_id=user.pk, provider="none", provider_key_id=None)


def test_for_run_refuses_another_users_key_and_another_providers(user, other_user, keyring_file, settings):
    settings.OPENAI_API_KEY = "sk-server-owned-9999"  # a fallback exists: the refusal must not fall back to it
    theirs = services.provider_key_create(owner=other_user, provider="openai", api_key=SECRET)
    mine_anthropic = services.provider_key_create(owner=user, provider="anthropic", api_key="sk-ant-mine-12345")

    for key_id in (theirs.pk, mine_anthropic.pk, 999_999):
        for check in (services.provider_key_check, services.provider_key_for_run):
            with pytest.raises(InvalidInput) as refused:
                check(owner_id=user.pk, provider="openai", provider_key_id=key_id)
            assert list(refused.value.detail) == ["provider_key_id"]


def test_last_used_is_written_at_most_once_a_minute(user, keyring_file, django_assert_num_queries):
    key = services.provider_key_create(owner=user, provider="openai", api_key=SECRET)

    services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=key.pk)
    first = ProviderKey.objects.get(pk=key.pk).last_used
    services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=key.pk)
    assert first is not None and ProviderKey.objects.get(pk=key.pk).last_used == first

    ProviderKey.objects.filter(pk=key.pk).update(last_used=timezone.now() - timedelta(minutes=2))
    services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=key.pk)
    assert ProviderKey.objects.get(pk=key.pk).last_used > first - timedelta(seconds=1)


# THE ORIGINAL SYSTEM'S private_key.pem
# ------------------------------------------------------------------------------


def test_the_original_systems_private_key_pem_works(auth_client, api_client, user, settings, tmp_path):
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True, timeout=60)

    # The original README's two commands, word for word.
    openssl("genpkey", "-algorithm", "RSA", "-out", "private_key.pem", "-pkeyopt", "rsa_keygen_bits:2048")
    openssl("rsa", "-pubout", "-in", "private_key.pem", "-out", "public_key.pem")
    settings.RSA_PRIVATE_KEY_FILE = str(tmp_path / "private_key.pem")

    served = api_client.get(PUBLIC_KEY).json()["public_key"]
    assert served.strip() == (tmp_path / "public_key.pem").read_text().strip()
    (tmp_path / "secret.txt").write_text(SECRET)
    openssl(
        *("pkeyutl", "-encrypt", "-pubin", "-inkey", "public_key.pem", "-in", "secret.txt", "-out", "secret.bin"),
        *("-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256"),
    )
    encrypted = base64.b64encode((tmp_path / "secret.bin").read_bytes()).decode()

    assert store(auth_client, encrypted_api_key=encrypted).status_code == 201
    assert services.provider_key_for_run(owner_id=user.pk, provider="openai", provider_key_id=None).api_key == SECRET


# ADMIN
# ------------------------------------------------------------------------------


def test_admin_lists_and_deletes_keys_without_showing_the_envelope(client, make_user, user, keyring_file):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    key = services.provider_key_create(owner=user, provider="openai", name="work", api_key=SECRET)

    listing = client.get(reverse("admin:tasks_providerkey_changelist"))
    detail = client.get(reverse("admin:tasks_providerkey_change", args=[key.pk]))

    assert listing.status_code == 200 and "work" in listing.text and key.kid in listing.text
    assert detail.status_code == 200 and SECRET[-4:] in detail.text
    for page in (listing, detail):
        assert SECRET not in page.text and "ciphertext" not in page.text and "wrapped" not in page.text
    deleted = client.post(reverse("admin:tasks_providerkey_delete", args=[key.pk]), {"post": "yes"})
    assert deleted.status_code == 302 and not ProviderKey.objects.filter(pk=key.pk).exists()


# THE TASK'S NEW FIELDS
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("max_steps", [0, 101])
def test_max_steps_outside_1_to_100_is_refused_by_the_database(user, max_steps):
    task = TaskFactory(owner=user)
    assert (task.max_steps, task.provider_key_id) == (25, None)
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.filter(pk=task.pk).update(max_steps=max_steps)
