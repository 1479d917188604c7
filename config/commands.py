"""What `config.exceptions` is to the API, for management commands: a service's error as a one-line CommandError."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management.base import CommandError

from config.errors import ServiceError


def validation_message(error: ValidationError) -> str:
    """A ValidationError on one line: `field: message; other: message`, a non-field message bare."""
    if not hasattr(error, "error_dict"):
        return " ".join(error.messages)
    return "; ".join(
        " ".join(messages) if field == NON_FIELD_ERRORS else f"{field}: {' '.join(messages)}"
        for field, messages in error.message_dict.items()
    )


@contextmanager
def service_errors_as_command_errors() -> Iterator[None]:
    """Run a service call; its ServiceError or ValidationError leaves as a CommandError (a message, no traceback)."""
    try:
        yield
    except ServiceError as error:
        raise CommandError(error.detail) from None
    except ValidationError as error:
        raise CommandError(validation_message(error)) from None
