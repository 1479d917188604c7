"""OpenAPI: the X-API-Key scheme is declared and offered wherever a JWT is."""

import pytest
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_x_api_key_security_scheme_is_declared(schema):
    assert schema["components"]["securitySchemes"]["apiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schema["components"]["securitySchemes"]["apiKeyAuth"]["description"],
    }


def test_every_operation_that_takes_a_jwt_takes_a_key(schema):
    """The key class is a default authentication class: a view that drops it shows up here."""
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            schemes = {name for requirement in operation.get("security", []) for name in requirement}
            if "bearerAuth" in schemes:
                assert "apiKeyAuth" in schemes, f"{method.upper()} {path}"
                checked += 1
    assert checked >= 10


def test_key_endpoints_are_documented(schema):
    operations = schema["paths"]["/api/v1/auth/api-keys"]
    assert set(operations) >= {"get", "post"}
    created = operations["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    name = created.rsplit("/", 1)[-1]
    assert "api_key" in schema["components"]["schemas"][name]["properties"]
    listed = schema["components"]["schemas"]["APIKey"]["properties"]
    assert "api_key" not in listed and "key_hash" not in listed
    assert set(schema["paths"]["/api/v1/auth/api-keys/{id}"]) >= {"get", "delete"}


def test_schema_endpoint_serves(client):
    response = client.get("/api/v1/schema/")
    assert response.status_code == 200 and b"apiKeyAuth" in response.content
