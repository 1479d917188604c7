"""OpenAPI extension (drf-spectacular) for the apikeys app; imported by ApiKeysConfig.ready()."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """OpenAPI: an `X-API-Key` header, offered by Swagger UI's Authorize dialog."""

    target_class = "apikeys.authentication.APIKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "A key from POST /api/v1/auth/api-keys or `manage.py create_api_key` "
            "(`sk_` + 49 characters). Clients that can only send a bearer token may send "
            "`Authorization: Bearer sk_...` instead.",
        }
