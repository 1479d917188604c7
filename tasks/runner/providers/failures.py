"""What an SDK's exception means for the call: the key refused, worth a retry, or final; and a safe message.

Both SDKs raise the same shapes (``APIStatusError`` with the response, ``APIConnectionError``,
its subclass ``APITimeoutError``), so one classifier serves both. Messages never carry the key,
a header or the SDK's own message (which quotes the whole error body; OpenAI's 401 body even
shows part of the key): only the status and the provider's short error text, trimmed, with
anything key-like masked.
"""

from __future__ import annotations

import email.utils
import re
import time
from types import ModuleType

from tasks.runner.egress import EgressRefused

from .calls import Failure
from .conversation import ProviderBlocked, ProviderRejectedKey

RETRIED_STATUSES = frozenset({408, 409, 429})  # and every 5xx (Anthropic's 529 "overloaded" too)
MAX_PROVIDER_TEXT = 200
# Secret-looking words (sk-..., sk-ant-..., long tokens) masked in a provider's message.
_KEY_LIKE = re.compile(r"\b(?:sk|key|api)[-_][A-Za-z0-9_*.-]{6,}|\b[A-Za-z0-9_-]{32,}\b")


def classify(error: BaseException, *, sdk: ModuleType, secret: str) -> Failure:
    """The Failure for ``error`` raised by ``sdk``'s client (or by our transport beneath it)."""
    refused = _egress_refusal(error)
    if refused is not None:
        return Failure(str(refused), error=ProviderBlocked)
    if isinstance(error, sdk.APIStatusError):
        return _status_failure(error, secret)
    if isinstance(error, sdk.APITimeoutError):
        return Failure("the provider did not answer in time", retryable=True)
    if isinstance(error, sdk.APIConnectionError):
        cause = error.__cause__ or error.__context__
        reason = type(cause).__name__ if cause is not None else "connection error"
        return Failure(f"could not connect to the provider ({reason})", retryable=True)
    if isinstance(error, OSError):  # the base_url's name did not resolve (transport.pin)
        return Failure("could not resolve the provider's host name", retryable=True)
    return Failure(f"the provider's answer could not be read ({type(error).__name__})")


def status_of(error: BaseException, sdk: ModuleType) -> int | None:
    return error.status_code if isinstance(error, sdk.APIStatusError) else None


def provider_text(error: BaseException, secret: str) -> str:
    """The provider's own short error message from the response body ("" when there is none), made safe."""
    try:
        body = error.response.json()
    except Exception:  # noqa: BLE001 -- not JSON, or no body: no message then
        return ""
    message = _find_message(body)
    return redact(message, secret)[:MAX_PROVIDER_TEXT].strip() if message else ""


def redact(text: str, secret: str) -> str:
    if secret:
        text = text.replace(secret, "[key]")
    return _KEY_LIKE.sub("[redacted]", text)


def _status_failure(error, secret: str) -> Failure:
    status = error.status_code
    if status in (401, 403):
        return Failure(f"provider rejected the key (HTTP {status})", error=ProviderRejectedKey)
    detail = provider_text(error, secret)
    described = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status in RETRIED_STATUSES or status >= 500:
        return Failure(described, retryable=True, retry_after=retry_after(error.response.headers))
    return Failure(f"the provider refused the request ({described})")


def retry_after(headers) -> float | None:
    """Seconds the provider asks us to wait: ``retry-after-ms``, else ``retry-after`` (seconds or a date)."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(when.timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, OverflowError):
        return None


def _find_message(body) -> str:
    """``{"error": {"message": ...}}`` (OpenAI, Anthropic), ``{"message": ...}`` or ``{"error": "..."}``."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    return body["message"] if isinstance(body.get("message"), str) else ""


def _egress_refusal(error: BaseException) -> EgressRefused | None:
    """The EgressRefused behind ``error``: raised directly (pin) or wrapped by the SDK (a request's host)."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, EgressRefused):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None
