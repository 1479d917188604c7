"""The keyring that signs JWTs with an asymmetric algorithm (RS*, ES*, EdDSA), and the JWKS that publishes it.

Another service verifies Gatehouse's tokens with the public keys of `GET /.well-known/jwks.json` (RFC 7517)
alone: each token names its key in a `kid` header, and the set holds every key a live token may be signed
with. The keyring is one PEM file (`JWT_PRIVATE_KEY_FILE`) of private keys, oldest first, the LAST one signing.
`rotate()` appends a new key, preceded by a `Created: <ISO 8601>` line (RFC 7468 allows text between PEM
blocks; openssl ignores it). A key that is no longer the newest keeps verifying (and stays in the set)
until `keep_for` after its successor was created, the longest a token it signed can live; then it is
ignored, and the next rotation drops it from the file. A key with no `Created:` line (a hand-made file) has
no known age, so the key before it is kept.

The kid is the key's RFC 7638 thumbprint (SHA-256 of its canonical public JWK, base64url), so it follows
the key whatever file it is in. The loaded keyring is cached per process and reloaded when the file changes
(mtime, size or inode): a rotation reaches every running process within RECHECK_SECONDS. Errors name files and
key numbers, never key bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.utils import timezone
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from config import crypto

RSA_GENERATED_BITS = 3072
RSA_MIN_BITS = 2048
_EC_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
ALGORITHMS = (*RSA_ALGORITHMS, *_EC_CURVES, "EdDSA")

_PEM_PRIVATE_KEY = re.compile(
    rb"(?:^Created: (?P<created>[^\r\n]+)\r?\n)?"
    rb"(?P<pem>-----BEGIN (?P<label>(?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----\r?\n.*?-----END (?P=label)-----)",
    re.DOTALL | re.MULTILINE,
)
# The members RFC 7638 hashes, per key type.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


class KeyringError(Exception):
    """The keyring file cannot be read, or holds no key usable with the configured algorithm."""


def _public_jwk(public_key) -> dict:
    if isinstance(public_key, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(public_key, as_dict=True)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(public_key, as_dict=True)
    return OKPAlgorithm.to_jwk(public_key, as_dict=True)


def thumbprint(jwk: dict) -> str:
    """RFC 7638: base64url(SHA-256) of the required members, sorted, with no whitespace."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    """One key of the keyring: its kid, the private key, when `rotate()` created it (None: unknown)."""

    kid: str
    private: object
    created_at: datetime | None
    block: bytes  # as stored (with its Created: line), so rewriting the file keeps each key byte for byte

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    @property
    def public(self):
        return self.private.public_key()

    def jwk(self, algorithm: str) -> dict:
        """The public key as a JWK of the set: with `kid`, `use: sig` and `alg`, no private member."""
        return {**_public_jwk(self.public), "kid": self.kid, "use": "sig", "alg": algorithm}


@dataclass(frozen=True)
class Keyring:
    """The keys of the file, oldest first; the last one signs."""

    path: Path
    algorithm: str
    keys: tuple[SigningKey, ...]

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def live(self, *, keep_for: timedelta, now: datetime | None = None) -> tuple[SigningKey, ...]:
        """The keys a live token may be signed with: the current one, and each older one whose successor
        was created less than `keep_for` ago (or at an unknown time)."""
        now = now or timezone.now()
        live = [self.current]
        for key, successor in zip(self.keys[:-1], self.keys[1:], strict=True):
            if successor.created_at is None or now - successor.created_at < keep_for:
                live.append(key)
        return tuple(live)

    def verifying_key(self, kid: str, *, keep_for: timedelta) -> SigningKey | None:
        """The live key named `kid`; None when no key has it, or its key has outlived its tokens."""
        for key in self.live(keep_for=keep_for):
            if key.kid == kid:
                return key
        return None

    def jwks(self, *, keep_for: timedelta) -> dict:
        """The JWK Set document (RFC 7517 section 5): the live keys, newest first."""
        return {"keys": [key.jwk(self.algorithm) for key in self.live(keep_for=keep_for)]}


def _check_fits(path: Path, number: int, private, algorithm: str) -> None:
    """Refuse a key that the algorithm cannot sign with, or that is too weak for it."""
    if algorithm in RSA_ALGORITHMS:
        if not isinstance(private, rsa.RSAPrivateKey):
            raise KeyringError(f"{path}: key {number} is not an RSA key, as {algorithm} needs.")
        if private.key_size < RSA_MIN_BITS:
            raise KeyringError(f"{path}: key {number} has {private.key_size} bits; at least {RSA_MIN_BITS} needed.")
    elif algorithm in _EC_CURVES:
        curve = _EC_CURVES[algorithm]
        if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, curve):
            raise KeyringError(f"{path}: key {number} is not an EC key on {curve.name}, as {algorithm} needs.")
    elif algorithm == "EdDSA":
        if not isinstance(private, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
            raise KeyringError(f"{path}: key {number} is not an Ed25519 or Ed448 key, as EdDSA needs.")
    else:
        raise KeyringError(f"JWT_ALGORITHM {algorithm} has no keyring; use one of {', '.join(ALGORITHMS)}.")


def _parse_created(path: Path, number: int, raw: bytes | None) -> datetime | None:
    if raw is None:
        return None
    try:
        created = datetime.fromisoformat(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise KeyringError(f"{path}: key {number} has an unreadable Created: line.") from None
    return created if created.tzinfo else created.replace(tzinfo=timezone.utc)


def parse(path: Path, data: bytes, algorithm: str) -> tuple[SigningKey, ...]:
    keys = []
    for number, match in enumerate(_PEM_PRIVATE_KEY.finditer(data), start=1):
        if match["label"] == b"ENCRYPTED PRIVATE KEY":
            raise KeyringError(f"{path}: key {number} is passphrase-protected; store it unencrypted, mode 0600.")
        try:
            private = serialization.load_pem_private_key(match["pem"], password=None)
        except (ValueError, TypeError, serialization.UnsupportedAlgorithm):
            raise KeyringError(f"{path}: key {number} is not a readable PEM private key.") from None
        _check_fits(path, number, private, algorithm)
        keys.append(
            SigningKey(
                kid=thumbprint(_public_jwk(private.public_key())),
                private=private,
                created_at=_parse_created(path, number, match["created"]),
                block=match.group(0).strip() + b"\n",
            )
        )
    if not keys:
        raise KeyringError(f"{path} holds no PEM private key.")
    return tuple(keys)


_cache_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[tuple[int, int, int], float, Keyring]] = {}
RECHECK_SECONDS = 1.0


def load(path: Path | str, algorithm: str) -> Keyring:
    """The keyring of `path` for `algorithm`, as cached until the file changes (looked at once a second at
    most: a stat per token would cost a tenth of a verification, measured)."""
    cached = _cache.get((str(path), algorithm))
    if cached is not None and time.monotonic() - cached[1] < RECHECK_SECONDS:
        return cached[2]
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as error:
        raise KeyringError(f"Cannot read the JWT keyring {path}: {error.strerror}.") from None
    signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    if cached is not None and cached[0] == signature:
        _cache[(str(path), algorithm)] = (signature, time.monotonic(), cached[2])
        return cached[2]
    with _cache_lock:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise KeyringError(f"Cannot read the JWT keyring {path}: {error.strerror}.") from None
        loaded = Keyring(path=path, algorithm=algorithm, keys=parse(path, data, algorithm))
        _cache[(str(path), algorithm)] = (signature, time.monotonic(), loaded)
        return loaded


def forget_cached() -> None:
    """Read the keyring file again at the next use (rotate() calls it, so this process sees its own rotation
    at once; other processes see it within RECHECK_SECONDS)."""
    _cache.clear()


# ROTATION
# ------------------------------------------------------------------------------


def new_private_key(algorithm: str):
    if algorithm in RSA_ALGORITHMS:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_GENERATED_BITS)
    if algorithm in _EC_CURVES:
        return ec.generate_private_key(_EC_CURVES[algorithm]())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyringError(f"JWT_ALGORITHM {algorithm} has no keyring; use one of {', '.join(ALGORITHMS)}.")


def _block(private, created_at: datetime) -> bytes:
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return f"Created: {created_at.isoformat(timespec='seconds')}\n".encode() + pem


def rotate(path: Path | str, algorithm: str, *, keep_for: timedelta) -> tuple[str, list[str]]:
    """Append a new key, which signs from now on (the file is created if missing), and drop the keys no live
    token can be signed with any more. Returns (the new kid, the kids dropped)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = timezone.now()
    with crypto.keyring_lock(path):
        existing = parse(path, path.read_bytes(), algorithm) if path.exists() else ()
        kept = (
            Keyring(path=path, algorithm=algorithm, keys=existing).live(keep_for=keep_for, now=now) if existing else ()
        )
        kept_kids = {key.kid for key in kept}
        private = new_private_key(algorithm)
        crypto.keyring_replace(path, [key.block for key in existing if key.kid in kept_kids] + [_block(private, now)])
        forget_cached()
    dropped = [key.kid for key in existing if key.kid not in kept_kids]
    return thumbprint(_public_jwk(private.public_key())), dropped
