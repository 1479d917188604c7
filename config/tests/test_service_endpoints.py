import pytest

pytestmark = pytest.mark.django_db


def test_hello_is_public(api_client):
    response = api_client.get("/api/v1/hello")
    assert response.status_code == 200 and response.json() == {"message": "Hello, World!"}


def test_hello_is_public_even_with_a_stale_token(client_for):
    assert client_for("expired.or.garbage").get("/api/v1/hello").status_code == 200


def test_protected_hello(api_client, auth_client, user):
    assert api_client.get("/api/v1/hello/protected").status_code == 401
    assert auth_client.get("/api/v1/hello/protected").json() == {
        "message": "Hello, alice!",
        "user_id": user.pk,
        "protected": True,
    }


def test_health_checks_every_dependency(api_client):
    response = api_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "ok"}}


def test_health_is_503_naming_the_failed_check(api_client, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    response = api_client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["checks"]["cache"].startswith("error")
    assert body["checks"]["database"] == "ok"


def test_liveness_touches_nothing(api_client, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert api_client.get("/health/live").json() == {"status": "ok"}


def test_api_index(api_client):
    body = api_client.get("/api").json()
    assert body["name"] == "Gatehouse" and body["version"] and body["docs"].endswith("/docs")


def test_schema_declares_bearer_and_every_accounts_path(api_client):
    response = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["passwordLogin"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    # Alternatives, each its own requirement object (one object would mean "all of them").
    assert {"bearerAuth": []} in schema["paths"]["/api/v1/auth/me"]["get"]["security"]
    assert {"passwordLogin": []} in schema["paths"]["/api/v1/auth/me"]["get"]["security"]
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/register",
        "/api/v1/auth/refresh",
        "/api/v1/auth/sessions",
        "/api/v1/users",
        "/api/v1/hello/protected",
    ]:
        assert path in schema["paths"], path


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_local_assets(api_client, page):
    response = api_client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn.jsdelivr" not in html and "unpkg" not in html
    assert "/static/drf_spectacular_sidecar/" in html


@pytest.mark.parametrize(
    ("forwarded", "expected"), [("203.0.113.9", "203.0.113.9"), ("<script>", None), ("1.2.3.4.5", None)]
)
def test_client_address_is_validated_even_behind_a_misconfigured_proxy_count(
    api_client, settings, user, password, forwarded, expected
):
    from accounts.models import AuthSession

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    response = api_client.post(
        "/api/v1/auth/login",
        {"username": "alice", "password": password},
        format="json",
        HTTP_X_FORWARDED_FOR=forwarded,
    )
    assert response.status_code == 200
    assert AuthSession.objects.get().ip_address == expected


def test_message_storage_is_built_for_pages_only(client):
    """Django's messages middleware builds its storage on every request; ours only outside /api/, where the
    admin's pages read it (Django keeps it on request._messages)."""
    api = client.get("/api/v1/hello")
    assert api.status_code == 200 and not hasattr(api.wsgi_request, "_messages")
    page = client.get("/admin/login/")
    assert page.status_code == 200 and hasattr(page.wsgi_request, "_messages")
