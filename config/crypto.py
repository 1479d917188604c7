"""The server's RSA keyring and envelope encryption: secrets the server must read back, stored sealed.

Clients encrypt a secret for the server with the published RSA public key (RSA-OAEP with
SHA-256, as the original system's clients did with its `private_key.pem`); the server seals
what it keeps with an envelope: a fresh 256-bit data key per secret encrypts it (AES-256-GCM)
and the data key is stored wrapped by the current RSA key (RSA-OAEP-SHA256). A stolen database
therefore reveals nothing without the keyring file, and a rotation only re-wraps data keys.

The keyring is one PEM file (`RSA_PRIVATE_KEY_FILE`) holding one or more RSA private keys,
oldest first: `rotate()` appends a new pair, which becomes the current key (the LAST one);
the older keys still decrypt until `retire()` removes them. Each key is named by its `kid`, the
first 16 hex digits of the SHA-256 of its public key (DER SubjectPublicKeyInfo), so the id
follows the key whatever file it is in. A missing file is generated on first use (RSA-3072,
mode 0600, race-free: the first process to link it wins, the others read it); every web and
worker process must read the same file (outside development a system check warns when it is
the default one generated in VAR_DIR).

The loaded keyring is cached per process and reloaded when the file changes (its mtime, size
or inode), so a rotation made by `manage.py rotate_rsa_key` reaches running processes at their
next use. Errors never carry the ciphertext or the plaintext.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

ALGORITHM = "RSA-OAEP-256"
GENERATED_KEY_BITS = 3072
MIN_KEY_BITS = 2048
DATA_KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM nonce size NIST SP 800-38D recommends; random, one data key per secret
KID_HEX_DIGITS = 16
# The keyring generated when RSA_PRIVATE_KEY_FILE is not set (and there is no ./private_key.pem): VAR_DIR/this.
DEFAULT_KEYRING_NAME = "rsa_private_key.pem"

_PEM_PRIVATE_KEY = re.compile(
    rb"-----BEGIN (?P<label>(?:RSA |ENCRYPTED )?PRIVATE KEY)-----\r?\n.*?-----END (?P=label)-----", re.DOTALL
)
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class CryptoError(Exception):
    """Base of this module's errors; messages name keys and files, never secret bytes."""


class KeyringError(CryptoError):
    """The keyring file cannot be read, holds no usable RSA key, or the change asked for is not allowed."""


class UnknownKeyId(CryptoError):
    """No key of the keyring has this kid (never had one, or it was retired)."""

    def __init__(self, kid: str):
        self.kid = kid
        super().__init__(f"No key with kid {kid!r} in the keyring.")


class DecryptionFailed(CryptoError):
    """The ciphertext does not decrypt with the key(s) tried: wrong key, wrong padding, corrupted or forged."""

    def __init__(self, message: str = "The ciphertext does not decrypt with the server's key."):
        super().__init__(message)


@dataclass(frozen=True)
class PublicKeyInfo:
    """What clients need to encrypt for the server: the current key's id, the algorithm, its PEM."""

    kid: str
    algorithm: str
    pem: str


@dataclass(frozen=True)
class Sealed:
    """A secret in an envelope: the AES-GCM ciphertext, its nonce, and its data key wrapped by RSA key `kid`."""

    kid: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes = b""

    def __repr__(self) -> str:  # the bytes say nothing to a reader and need not reach a log
        return f"Sealed(kid={self.kid!r}, {len(self.ciphertext)} bytes)"


@dataclass(frozen=True)
class _Key:
    kid: str
    private: rsa.RSAPrivateKey
    pem: bytes  # as stored in the file, so rewriting the file keeps each key byte for byte


@dataclass(frozen=True)
class Keyring:
    """The keys of the file, oldest first; the last is current."""

    path: Path
    keys: tuple[_Key, ...]

    @property
    def current(self) -> _Key:
        return self.keys[-1]

    @property
    def kids(self) -> list[str]:
        return [key.kid for key in self.keys]

    def get(self, kid: str) -> _Key:
        for key in self.keys:
            if key.kid == kid:
                return key
        raise UnknownKeyId(kid)


def kid_of(public_key: rsa.RSAPublicKey) -> str:
    """The key's stable id: the first 16 hex digits of SHA-256 over its DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:KID_HEX_DIGITS]


# THE KEYRING FILE
# ------------------------------------------------------------------------------


def keyring_path() -> Path:
    return Path(settings.RSA_PRIVATE_KEY_FILE)


def _parse(path: Path, data: bytes) -> tuple[_Key, ...]:
    keys = []
    for number, match in enumerate(_PEM_PRIVATE_KEY.finditer(data), start=1):
        if match["label"] == b"ENCRYPTED PRIVATE KEY":
            raise KeyringError(f"{path}: key {number} is passphrase-protected; store it unencrypted, mode 0600.")
        try:
            private = serialization.load_pem_private_key(match.group(0), password=None)
        except (ValueError, TypeError) as error:
            raise KeyringError(f"{path}: key {number} is not a readable PEM private key ({error}).") from None
        if not isinstance(private, rsa.RSAPrivateKey):
            raise KeyringError(f"{path}: key {number} is not an RSA key.")
        if private.key_size < MIN_KEY_BITS:
            raise KeyringError(f"{path}: key {number} has {private.key_size} bits; at least {MIN_KEY_BITS} needed.")
        keys.append(_Key(kid=kid_of(private.public_key()), private=private, pem=match.group(0).strip() + b"\n"))
    if not keys:
        raise KeyringError(f"{path} holds no PEM private key.")
    return tuple(keys)


def _new_key_pem() -> bytes:
    private = rsa.generate_private_key(public_exponent=65537, key_size=GENERATED_KEY_BITS)
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private_temp(directory: Path, data: bytes) -> Path:
    """`data` in a new file of `directory`, mode 0600 from its creation (mkstemp), flushed to disk."""
    descriptor, name = tempfile.mkstemp(dir=directory, prefix=".keyring-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _generate_if_missing(path: Path) -> None:
    """Create the keyring with one new key, unless a file is there. Race-free: written aside, then linked
    into place; link() fails when another process linked first, and that process's key is kept."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _write_private_temp(path.parent, _new_key_pem())
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int, int], Keyring]] = {}


def keyring() -> Keyring:
    """The keyring of RSA_PRIVATE_KEY_FILE (generated if missing), as cached until the file changes."""
    path = keyring_path()
    _generate_if_missing(path)
    try:
        stat = path.stat()
    except OSError as error:
        raise KeyringError(f"Cannot read the RSA keyring {path}: {error.strerror}.") from None
    signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _cache.get(path)
    if cached is not None and cached[0] == signature:
        return cached[1]
    with _cache_lock:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise KeyringError(f"Cannot read the RSA keyring {path}: {error.strerror}.") from None
        loaded = Keyring(path=path, keys=_parse(path, data))
        _cache[path] = (signature, loaded)
        return loaded


@contextlib.contextmanager
def keyring_lock(path: Path):
    """Serialise a keyring file's writers (two rotations at once would each drop the other's key); also used
    by the JWT keyring (accounts/jwks.py)."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def keyring_replace(path: Path, keys: list[bytes]) -> None:
    """Write the keyring anew and move it into place in one rename: a reader sees the old file or the new."""
    temporary = _write_private_temp(path.parent, b"".join(keys))
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def rotate() -> str:
    """Append a new key pair to the keyring; it becomes the current key. Returns its kid."""
    path = keyring_path()
    _generate_if_missing(path)
    with keyring_lock(path):
        existing = _parse(path, path.read_bytes())
        new_pem = _new_key_pem()
        keyring_replace(path, [key.pem for key in existing] + [new_pem])
    return keyring().current.kid


def retire(kids: list[str] | set[str]) -> list[str]:
    """Remove the keys named by `kids` from the keyring (never the current one); returns the kids removed.

    What was sealed or encrypted with a retired key no longer decrypts: re-seal first.
    """
    path = keyring_path()
    wanted = set(kids)
    with keyring_lock(path):
        existing = _parse(path, path.read_bytes())
        if existing[-1].kid in wanted:
            raise KeyringError(f"{existing[-1].kid} is the current key and cannot be retired; rotate first.")
        removed = [key.kid for key in existing if key.kid in wanted]
        if removed:
            keyring_replace(path, [key.pem for key in existing if key.kid not in wanted])
    return removed


# PUBLIC KEY AND RSA-OAEP
# ------------------------------------------------------------------------------


def public_key() -> PublicKeyInfo:
    """The current key's public half, for clients to encrypt with."""
    current = keyring().current
    pem = current.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKeyInfo(kid=current.kid, algorithm=ALGORITHM, pem=pem.decode("ascii"))


def _oaep_decrypt(key: _Key, ciphertext: bytes) -> bytes:
    if len(ciphertext) != key.private.key_size // 8:
        raise DecryptionFailed(f"The ciphertext is not {key.private.key_size // 8} bytes long, as key {key.kid} needs.")
    try:
        return key.private.decrypt(ciphertext, _OAEP)
    except ValueError:  # cryptography's one error for every OAEP failure, so no padding oracle either
        raise DecryptionFailed() from None


def rsa_oaep_decrypt(ciphertext: bytes, kid: str | None = None) -> bytes:
    """Decrypt what a client encrypted with RSA-OAEP-SHA256 for key `kid` (None: the current key, then the others).

    UnknownKeyId when `kid` names no key of the keyring; DecryptionFailed when no key tried decrypts it.
    """
    ring = keyring()
    if kid is not None:
        return _oaep_decrypt(ring.get(kid), ciphertext)
    for key in reversed(ring.keys):
        with contextlib.suppress(DecryptionFailed):
            return _oaep_decrypt(key, ciphertext)
    raise DecryptionFailed()


# ENVELOPE
# ------------------------------------------------------------------------------


def seal(plaintext: bytes, *, associated_data: bytes = b"") -> Sealed:
    """Encrypt `plaintext` under a new data key, wrapped by the current RSA key.

    `associated_data` (not stored) binds the envelope to its context, e.g. the row it belongs to:
    unseal() must be given the same bytes, so an envelope copied elsewhere does not open there.
    """
    current = keyring().current
    data_key = AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, associated_data or None)
    wrapped_key = current.private.public_key().encrypt(data_key, _OAEP)
    return Sealed(kid=current.kid, wrapped_key=wrapped_key, nonce=nonce, ciphertext=ciphertext)


def unseal(sealed: Sealed, *, associated_data: bytes = b"") -> bytes:
    """The plaintext of an envelope; UnknownKeyId if its RSA key was retired, DecryptionFailed if it was altered."""
    data_key = _oaep_decrypt(keyring().get(sealed.kid), bytes(sealed.wrapped_key))
    try:
        return AESGCM(data_key).decrypt(bytes(sealed.nonce), bytes(sealed.ciphertext), associated_data or None)
    except (InvalidTag, ValueError):
        raise DecryptionFailed("The sealed data does not open: altered, or sealed for another context.") from None


def is_generated_default(path: Path | None = None) -> bool:
    """Whether the keyring is the default one, generated per machine in VAR_DIR (the system check's concern)."""
    path = (path or keyring_path()).resolve()
    return path == (Path(settings.VAR_DIR) / DEFAULT_KEYRING_NAME).resolve()
