"""Fixtures of the accounts tests."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@pytest.fixture(scope="session")
def _rsa_pem() -> bytes:
    """One 2048-bit key for the session (generating one per test would cost more than the tests)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def keyring(settings, tmp_path, _rsa_pem):
    """RSA_PRIVATE_KEY_FILE in tmp_path, for what two-factor seals: the real var/ file is never written."""
    path = tmp_path / "keys" / "rsa_private_key.pem"
    path.parent.mkdir()
    path.write_bytes(_rsa_pem)
    path.chmod(0o600)
    settings.RSA_PRIVATE_KEY_FILE = str(path)
    return path
