"""System checks (`manage.py check`, and every server and worker start) for the tasks app's settings."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from config import crypto
from tasks import runner


@register()
def egress_allowlist_check(app_configs, **kwargs) -> list[Error]:
    """EGRESS_ALLOWLIST must parse: a bad entry would otherwise fail every run at its start."""
    try:
        runner.EgressPolicy.from_entries(settings.EGRESS_ALLOWLIST)
    except ValueError as error:
        return [
            Error(
                str(error),
                hint="Host names, IP addresses or CIDR blocks, each with an optional :port.",
                id="tasks.E001",
            )
        ]
    return []


@register()
def rsa_keyring_check(app_configs, **kwargs) -> list[Warning]:
    """Outside development, the RSA keyring should be one file every web and worker replica reads.

    The default keyring, generated in VAR_DIR, is per machine: a key encrypted for one replica's public key
    does not decrypt on another, and a worker elsewhere cannot open the keys the web stored.
    """
    if settings.DEBUG or not crypto.is_generated_default():
        return []
    return [
        Warning(
            f"The RSA keyring is the default {crypto.keyring_path()}, generated on first use per machine, while "
            "every web and worker replica must share one.",
            hint="Set RSA_PRIVATE_KEY_FILE to a file (a mounted secret) that every replica reads; "
            "docs/provider-keys.md.",
            id="tasks.W001",
        )
    ]
