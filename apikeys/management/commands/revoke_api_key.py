"""manage.py revoke_api_key PREFIX_OR_ID: revoke a key by its id, its display prefix or the full key."""

from django.core.management.base import BaseCommand, CommandError

from apikeys import selectors, services


class Command(BaseCommand):
    help = "Revoke an API key, named by its id, its display prefix (sk_XXXXXXXX) or the full key (e.g. a leaked one)."

    def add_arguments(self, parser):
        parser.add_argument("reference", metavar="PREFIX_OR_ID")

    def handle(self, *args, reference, **options):
        found = selectors.api_key_find(reference=reference)
        if not found:
            raise CommandError(f"No API key matches {reference!r}.")
        if len(found) > 1:
            listing = ", ".join(f"id {key.pk} ({key.owner.username}: {key.name!r})" for key in found)
            raise CommandError(f"{len(found)} keys share the prefix {reference!r}: {listing}. Revoke one by its id.")
        key = found[0]
        if key.revoked_at is not None:
            self.stdout.write(
                f"API key {key.pk} ({key.prefix}…) was already revoked at {key.revoked_at:%Y-%m-%d %H:%M} UTC."
            )
            return
        services.api_key_revoke(key=key)
        self.stdout.write(f"Revoked API key {key.pk} {key.name!r} ({key.prefix}…) of {key.owner.username}.")
