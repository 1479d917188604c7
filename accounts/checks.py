"""System checks (`manage.py check`, and every server and worker start) for the accounts app's settings."""

from django.conf import settings
from django.core.checks import Error, Warning, register

CONSOLE_BACKEND = "django.core.mail.backends.console.EmailBackend"


@register()
def console_mail_check(app_configs, **kwargs) -> list[Warning]:
    """Outside development, mail must go to a mail server: the console backend (EMAIL_URL unset) writes every
    password reset and verification link into the worker's log, where whoever reads the logs can use them."""
    if settings.DEBUG or settings.EMAIL_BACKEND != CONSOLE_BACKEND:
        return []
    return [
        Warning(
            "Mail is written to the console (EMAIL_URL is not set): password reset and verification links "
            "would be in the logs, and no user receives them.",
            hint="Set EMAIL_URL, e.g. smtp+tls://user:password@mail.example.com:587.",
            id="accounts.W001",
        )
    ]


@register()
def jwt_keyring_check(app_configs, **kwargs) -> list[Error]:
    """With RS*, ES* or EdDSA, the keyring must load at start, not at the first login."""
    from accounts.jwks import KeyringError
    from accounts.tokens import token_backend

    backend = token_backend()
    if not backend.uses_keyring:
        return []
    try:
        backend.keyring()
    except KeyringError as error:
        return [
            Error(
                str(error),
                hint="Create the keyring with `manage.py rotate_jwt_key`, or point JWT_PRIVATE_KEY_FILE at it.",
                id="accounts.E001",
            )
        ]
    return []
