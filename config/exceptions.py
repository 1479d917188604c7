"""One exception handler for the API: every error becomes a DRF-shaped 4xx body."""

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from config.errors import WWW_AUTHENTICATE, InvalidInput, ServiceError


class _ServiceAPIException(exceptions.APIException):
    def __init__(self, error: ServiceError):
        self.status_code = error.status_code
        # DRF's handler turns `wait` into a Retry-After header, as it does for its own throttles.
        self.wait = getattr(error, "retry_after", None)
        super().__init__(detail=error.detail, code=error.code)


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "request_too_large"


def _django_validation_detail(error: DjangoValidationError):
    if hasattr(error, "error_dict"):
        return {field or "non_field_errors": messages for field, messages in error.message_dict.items()}
    return {"non_field_errors": error.messages}


# The `code` of an error whose exception gives none of its own (Django's Http404 and PermissionDenied
# reach DRF's handler as plain exceptions).
STATUS_CODES = {401: "not_authenticated", 403: "permission_denied", 404: "not_found", 409: "conflict", 429: "throttled"}


def _error_code(exc, status_code: int) -> str:
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        if isinstance(codes, str):
            return codes
        if isinstance(codes, list) and len(codes) == 1 and isinstance(codes[0], str):
            return codes[0]
    return STATUS_CODES.get(status_code, "error")


def _with_code(data, exc, status_code: int):
    """Every request-level error body: `{"detail": ..., "code": ...}`; a validation error: `{field: [...]}`."""
    if isinstance(data, list):  # ValidationError("message") with no field: say it is about no field
        return {"non_field_errors": data}
    if isinstance(data, dict) and set(data) == {"detail"} and isinstance(data["detail"], str):
        return {**data, "code": _error_code(exc, status_code)}
    return data


def api_exception_handler(exc, context):
    if isinstance(exc, InvalidInput):
        exc = exceptions.ValidationError(exc.detail)
    elif isinstance(exc, ServiceError):
        exc = _ServiceAPIException(exc)
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_validation_detail(exc))
    elif isinstance(exc, RequestDataTooBig):
        # Raised by request.body, which DRF reads for JSON and forms: over DATA_UPLOAD_MAX_MEMORY_SIZE.
        exc = RequestTooLarge(f"Request body too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    elif isinstance(exc, TooManyFieldsSent):
        exc = exceptions.ParseError(f"Too many form fields: at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is not None:
        response.data = _with_code(response.data, exc, response.status_code)
    # Every 401 tells the client how to authenticate (RFC 9110 §11.6.1), including the
    # ones raised by public endpoints such as login, which have no authenticator to ask.
    if response is not None and response.status_code == status.HTTP_401_UNAUTHORIZED:
        response.headers.setdefault("WWW-Authenticate", WWW_AUTHENTICATE)
    return response
