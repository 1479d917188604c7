"""System checks (`manage.py check`, and every server and worker start) for the tasks app's settings."""

from django.conf import settings
from django.core.checks import Error, register

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
