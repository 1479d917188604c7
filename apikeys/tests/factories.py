"""Builders and helpers shared by the API key tests: keys made by the real service, clients that send them."""

import factory
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from apikeys import services
from apikeys.models import APIKey


class APIKeyFactory(factory.django.DjangoModelFactory):
    """Keys made by the real service (so hashes and prefixes are genuine); the plaintext is on `.plaintext`."""

    class Meta:
        model = APIKey

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    expires_days = None

    @classmethod
    def _create(cls, model_class, *, owner, name, expires_days=None, scopes=None, **kwargs):
        key, plaintext = services.api_key_create(user=owner, name=name, expires_days=expires_days, scopes=scopes)
        key.plaintext = plaintext
        return key


PROTECTED = "/api/v1/hello/protected"
ME = "/api/v1/auth/me"
VALIDATE = "/api/v1/auth/validate"
KEYS = "/api/v1/auth/api-keys"


def x_api_key(key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


def bearer(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


HEADERS = {"X-API-Key": x_api_key, "Authorization: Bearer": bearer}


def is_update(query) -> bool:
    # A prepared statement's text is not captured (psycopg does not expose it): None, never an UPDATE.
    return (query["sql"] or "").startswith("UPDATE")


def assert_rejected(response, detail=None):
    assert response.status_code == 401, response.content
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    if detail:
        assert response.json() == {"detail": detail, "code": "authentication_failed"}


def bad_checksum(key: str) -> str:
    """The key with its last checksum character changed: well-shaped, but not a key."""
    last = key[-1]
    return key[:-1] + ("A" if last != "A" else "B")
