"""Helpers for reading facts about the client from a request."""

import contextvars
import ipaddress

from rest_framework.throttling import BaseThrottle

# Every API key starts with this (apikeys/keys.py makes them): a bearer credential that does is
# an API key, which the API key authentication claims and the JWT authentication leaves alone.
API_KEY_PREFIX = "sk_"


# The HTTP request being served (config.middleware sets it), for code far from the view that records
# who asked: accounts.services.security_event_record. None outside a request (a Celery job, the CLI).
current_request: contextvars.ContextVar = contextvars.ContextVar("current_request", default=None)


def current_client() -> tuple[str | None, str]:
    """The address and User-Agent of the request being served, or (None, "") outside one."""
    request = current_request.get()
    if request is None:
        return None, ""
    return client_ip(request), request.META.get("HTTP_USER_AGENT", "")[:512]


def client_ip(request) -> str | None:
    """The client's address, trusting X-Forwarded-For only as far as NUM_PROXIES allows (as DRF's
    throttles do); None when that is not an IP address (a forged header behind a misconfigured proxy count)."""
    candidate = BaseThrottle().get_ident(request)
    try:
        return str(ipaddress.ip_address(candidate.strip()))
    except (ValueError, AttributeError):
        return None


def bearer_token(request) -> str | None:
    """The credential of an `Authorization: Bearer ...` header (scheme in any case), else None."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip() or None


def is_api_key(credential: str) -> bool:
    """Whether a credential is shaped like an API key (its prefix); validity is for apikeys to decide."""
    return credential.startswith(API_KEY_PREFIX)
