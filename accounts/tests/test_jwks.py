"""Asymmetric JWTs: the JWKS another service verifies them with, the kid header, key rotation; iss and aud."""

import base64
import hashlib
import hmac
import io
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts import jwks, services

pytestmark = pytest.mark.django_db

JWKS = "/.well-known/jwks.json"
ME = "/api/v1/auth/me"
ALGORITHMS = ["RS256", "ES256", "EdDSA"]


def configure(settings, path, algorithm):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ALGORITHM": algorithm, "SIGNING_KEY": ""}
    settings.JWT_PRIVATE_KEY_FILE = str(path)


@pytest.fixture(params=ALGORITHMS)
def asymmetric(request, settings, tmp_path):
    """JWT_ALGORITHM set to RS256, ES256 or EdDSA, with a keyring of one key made by rotate_jwt_key."""
    configure(settings, tmp_path / "jwt" / "keyring.pem", request.param)
    rotate()
    return request.param


def verify_with_jwks_only(token: str, document: dict, algorithm: str, settings) -> dict:
    """What another service does: PyJWT and the published set, nothing of Gatehouse's."""
    key = jwt.PyJWKSet.from_dict(document)[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(
        token,
        key.key,
        algorithms=[algorithm],
        audience=settings.JWT_AUDIENCE,
        issuer=settings.JWT_ISSUER,
        options={"require": ["exp", "iat", "iss", "aud"]},
    )


def rotate():
    call_command("rotate_jwt_key", stdout=io.StringIO())


def test_a_token_verifies_with_only_the_jwks_and_pyjwt(asymmetric, api_client, user, login, settings):
    token = str(login(user).access)
    document = api_client.get(JWKS).json()
    (published,) = document["keys"]
    assert published["use"] == "sig" and published["alg"] == asymmetric
    assert jwt.get_unverified_header(token) == {"alg": asymmetric, "kid": published["kid"], "typ": "JWT"}
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(published)  # the public half only

    claims = verify_with_jwks_only(token, document, asymmetric, settings)
    assert claims["user_id"] == str(user.pk)
    assert claims["aud"] == "gatehouse" and claims["iss"] == settings.JWT_ISSUER


def test_after_rotation_old_and_new_tokens_verify_and_the_jwks_holds_both(
    asymmetric, api_client, user, login, client_for, settings
):
    old = str(login(user).access)
    rotate()
    new = str(login(user).access)
    old_kid, new_kid = (jwt.get_unverified_header(token)["kid"] for token in (old, new))
    assert old_kid != new_kid

    document = api_client.get(JWKS).json()
    assert [key["kid"] for key in document["keys"]] == [new_kid, old_kid]
    for token in (old, new):
        assert verify_with_jwks_only(token, document, asymmetric, settings)["user_id"] == str(user.pk)
        assert client_for(token).get(ME).status_code == 200


def test_a_superseded_key_leaves_the_set_once_its_tokens_have_expired(
    asymmetric, api_client, user, login, client_for, settings
):
    old = str(login(user).access)
    rotate()
    path = settings.JWT_PRIVATE_KEY_FILE
    longest = max(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"], settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"])
    # The successor was created just over the longest token lifetime ago: nothing the old key signed lives on.
    backdated = (timezone.now() - longest - timedelta(minutes=1)).isoformat(timespec="seconds")
    text = Path(path).read_text()
    last = text.rindex("Created: ")
    Path(path).write_text(text[:last] + re.sub(r"^Created: \S+", f"Created: {backdated}", text[last:]))

    kids = [key["kid"] for key in api_client.get(JWKS).json()["keys"]]
    assert len(kids) == 1 and jwt.get_unverified_header(old)["kid"] not in kids
    assert client_for(old).get(ME).status_code == 401
    assert client_for(str(login(user).access)).get(ME).status_code == 200
    # ...and the next rotation drops it from the file.
    rotate()
    assert len(jwks.parse(path, Path(path).read_bytes(), asymmetric)) == 2


@pytest.mark.parametrize(
    "attack",
    [
        "no_kid",
        "unknown_kid",
        "hs256_with_the_public_key",
        "other_key_same_kid",
        "kid_not_a_string",
        "header_not_an_object",
        "header_not_base64",
        "huge_header",
    ],
)
def test_forged_asymmetric_tokens_are_401(asymmetric, api_client, user, login, client_for, settings, attack):
    genuine = str(login(user).access)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    kid = jwt.get_unverified_header(genuine)["kid"]
    stranger = jwks.new_private_key(asymmetric)
    if attack == "no_kid":
        token = jwt.encode(claims, stranger, algorithm=asymmetric)
    elif attack == "unknown_kid":
        token = jwt.encode(claims, stranger, algorithm=asymmetric, headers={"kid": "not-a-key-of-ours"})
    elif attack == "other_key_same_kid":
        token = jwt.encode(claims, stranger, algorithm=asymmetric, headers={"kid": kid})
    elif attack == "hs256_with_the_public_key":  # algorithm confusion: the published public key as an HMAC secret
        key = jwt.PyJWKSet.from_dict(api_client.get(JWKS).json())[kid].key
        public_pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        token = _hs256_raw(claims, public_pem, kid)
    else:  # headers PyJWT would not write: the genuine payload and signature under another header
        segment = {
            "kid_not_a_string": _b64(json.dumps({"alg": asymmetric, "kid": [kid]}).encode()).decode(),
            "header_not_an_object": "W10",
            "header_not_base64": "e30*",
            "huge_header": "e" * 100_000,
        }[attack]
        token = ".".join([segment, *genuine.split(".")[1:]])
    assert client_for(token).get(ME).status_code == 401, attack


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _hs256_raw(claims: dict, secret: bytes, kid: str) -> str:
    """An HS256 token by hand: PyJWT itself refuses a PEM as an HMAC secret, an attacker's code would not."""
    signing_input = (
        _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()) + b"." + _b64(json.dumps(claims).encode())
    )
    return (signing_input + b"." + _b64(hmac.new(secret, signing_input, hashlib.sha256).digest())).decode()


def test_with_a_shared_secret_the_set_is_empty_and_there_is_nothing_to_rotate(api_client):
    response = api_client.get(JWKS)
    assert response.status_code == 200
    assert response.json() == {"keys": []}
    with pytest.raises(CommandError, match="shared secret"):
        rotate()


def test_a_key_of_the_wrong_type_is_refused(settings, tmp_path):
    path = tmp_path / "keyring.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(jwks.KeyringError, match="not an RSA key"):
        jwks.load(path, "RS256")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the weak key under test)
    path.write_bytes(
        weak.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(jwks.KeyringError, match="at least 2048"):
        jwks.load(path, "RS256")


def test_the_kid_is_the_rfc_7638_thumbprint():
    # RFC 7638 section 3.1's example key and thumbprint.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjB"
            "ZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8"
            "KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_"
            "xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwks.thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.django_db(transaction=True)
def test_pyjwkclient_verifies_tokens_from_the_live_server_across_a_rotation(settings, tmp_path, live_server, make_user):
    """The README's verifier, as is: PyJWKClient fetches the set over HTTP and picks the key by kid."""
    configure(settings, tmp_path / "keyring.pem", "RS256")
    rotate()
    user = make_user()
    old = str(services.auth_session_open(user=user).access)
    rotate()
    new = str(services.auth_session_open(user=user).access)

    client = jwt.PyJWKClient(f"{live_server.url}{JWKS}")
    for token in (old, new):
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key, algorithms=["RS256"], audience="gatehouse", issuer=settings.JWT_ISSUER)
        assert claims["user_id"] == str(user.pk)


def test_a_missing_or_unusable_keyring_fails_the_system_check(settings, tmp_path):
    from accounts.checks import jwt_keyring_check

    configure(settings, tmp_path / "missing.pem", "ES256")
    assert [error.id for error in jwt_keyring_check(None)] == ["accounts.E001"]
    rotate()
    assert jwt_keyring_check(None) == []
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ALGORITHM": "RS256"}  # an EC keyring for an RSA algorithm
    assert "not an RSA key" in jwt_keyring_check(None)[0].msg


def test_a_rotation_by_another_process_reaches_this_one_within_the_recheck_interval(
    settings, tmp_path, user, login, monkeypatch
):
    """`manage.py rotate_jwt_key` runs in a process of its own; the web processes read the file again."""
    path = tmp_path / "keyring.pem"
    configure(settings, path, "ES256")
    rotate()
    before = jwt.get_unverified_header(str(login(user).access))["kid"]
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        VAR_DIR=str(tmp_path / "var"),
        JWT_ALGORITHM="ES256",
        JWT_PRIVATE_KEY_FILE=str(path),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "rotate_jwt_key"],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    new_kid = result.stdout.split()[3].rstrip(".")
    assert new_kid != before
    monkeypatch.setattr(jwks, "RECHECK_SECONDS", 0)  # rather than sleep through the second
    assert jwt.get_unverified_header(str(login(user).access))["kid"] == new_kid
