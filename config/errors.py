"""Errors that services raise; `config.exceptions.api_exception_handler` maps them to HTTP."""

# The challenge every 401 carries (RFC 9110 §11.6.1).
WWW_AUTHENTICATE = 'Bearer realm="api"'


class ServiceError(Exception):
    """Base of the project's errors: a message for the client and the status it maps to."""

    status_code = 400
    default_detail = "Invalid request."
    # The stable, machine-readable `code` of the error body, beside its `detail`.
    code = "invalid"

    def __init__(self, detail: str | None = None):
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class InvalidInput(ServiceError):
    """Input that breaks a rule only a service can check; `detail` has DRF's field-error shape.

    `{"start_url": ["..."]}`, or nested where the input is: `{"steps": {"1": ["..."]}}`.
    """


class Conflict(ServiceError):
    """The request clashes with the current state (a taken username, a task already running)."""

    status_code = 409
    default_detail = "Conflict with the current state of the resource."
    code = "conflict"


class QuotaExceeded(ServiceError):
    """A usage quota is used up for now; `retry_after` is how many seconds until it frees (the Retry-After header)."""

    status_code = 429
    default_detail = "Quota exceeded; try again later."
    code = "quota_exceeded"

    def __init__(self, detail: str | None = None, *, retry_after: int):
        super().__init__(detail)
        self.retry_after = max(int(retry_after), 1)


class AuthenticationError(ServiceError):
    """Credentials are missing, wrong, expired or revoked."""

    status_code = 401
    default_detail = "Invalid or expired credentials."
    code = "authentication_failed"


class NotFound(ServiceError):
    """The object does not exist, or is not the caller's to see."""

    status_code = 404
    default_detail = "Not found."
    code = "not_found"
