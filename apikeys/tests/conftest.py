"""Fixtures of the API key tests."""

import pytest

from apikeys.tests.factories import HEADERS, APIKeyFactory


@pytest.fixture(params=list(HEADERS), ids=["x-api-key", "bearer"])
def key_client(request):
    """Returns make(key) -> client sending the key in the parametrized header."""
    return HEADERS[request.param]


@pytest.fixture
def api_key(user):
    return APIKeyFactory(owner=user, name="ci")
