"""DRF authentication by API key: `X-API-Key: sk_...`, or `Authorization: Bearer sk_...`."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from apikeys import services
from config.errors import WWW_AUTHENTICATE, AuthenticationError
from config.requests import bearer_token, client_ip, is_api_key


class APIKeyAuthentication(BaseAuthentication):
    """Authenticates as the key's owner (`request.user`); `request.auth` is the key (`services.KeyState`: its
    fields as authentication read them, frozen).

    Header only: a key in a query string would end up in access logs and browser history,
    so it is never read from there. Any credential this class claims (an X-API-Key header,
    even an empty one, or a bearer credential starting with `sk_`) must be valid or the
    request fails with 401; it does not fall through to the other classes.
    """

    header = "HTTP_X_API_KEY"

    def authenticate(self, request):
        raw = request.META.get(self.header)
        if raw is None:
            raw = bearer_token(request)
            if raw is None or not is_api_key(raw):
                return None  # not ours: a JWT, a session cookie, or no credential at all
        try:
            return services.api_key_authenticate(raw_key=raw.strip(), ip_address=lambda: client_ip(request))
        except AuthenticationError as error:
            raise exceptions.AuthenticationFailed(error.detail) from None

    def authenticate_header(self, request):
        return WWW_AUTHENTICATE
