"""OpenAPI extensions (drf-spectacular) for the accounts app; imported by AccountsConfig.ready()."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class JWTSessionAuthenticationScheme(OpenApiAuthenticationExtension):
    """OpenAPI: a bearer JWT, and the OAuth2 password flow Swagger UI's Authorize button uses to get one."""

    target_class = "accounts.authentication.JWTSessionAuthentication"
    name = ["bearerAuth", "passwordLogin"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            {"type": "oauth2", "flows": {"password": {"tokenUrl": "/api/v1/auth/token", "scopes": {}}}},
        ]
