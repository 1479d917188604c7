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


def split_alternative_security(result, generator, request, public):
    """drf-spectacular lists the schemes of one authentication class as one requirement, which
    OpenAPI reads as "all of them". A bearer JWT and the password flow that obtains one are
    alternatives: give each its own requirement object."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "security" not in operation:
                continue
            split = []
            for requirement in operation["security"]:
                # An empty requirement ({}) means "no credential needed" and stays as it is.
                split.extend([{name: scopes} for name, scopes in requirement.items()] or [requirement])
            operation["security"] = split
    return result
