"""DRF authentication by JWT access token, checked against its login session."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from accounts import services
from config.errors import WWW_AUTHENTICATE, AuthenticationError
from config.requests import bearer_token, is_api_key


class JWTSessionAuthentication(BaseAuthentication):
    """`Authorization: Bearer <access token>`; the token's session must still be active."""

    def authenticate(self, request):
        raw = bearer_token(request)
        # An API key sent as a bearer token belongs to the API key class.
        if raw is None or is_api_key(raw):
            return None
        try:
            return services.access_token_authenticate(raw_token=raw)
        except AuthenticationError as error:
            raise exceptions.AuthenticationFailed(error.detail) from None

    def authenticate_header(self, request):
        return WWW_AUTHENTICATE
