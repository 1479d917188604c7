"""manage.py cloudinary_orphans [--delete]: Cloudinary assets that no result references (and nothing will delete)."""

from django.core.management.base import BaseCommand, CommandError

from results import selectors, services
from results.storage import StorageRejected, StorageUnavailable


class Command(BaseCommand):
    help = (
        "List the result files on Cloudinary (under CLOUDINARY_STORAGE['PREFIX']/results/) that no result "
        "references and that are not waiting in the deletion journal; with --delete, destroy them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true", help="Destroy the orphaned assets (CDN invalidated).")
        parser.add_argument("--page-size", type=int, default=500, help="Assets per Admin API page (at most 500).")

    def handle(self, *args, delete: bool, page_size: int, verbosity: int, **options):
        if not selectors.remote_storage_aliases():
            raise CommandError("Cloudinary is not configured (set CLOUDINARY_URL, see docs/storage.md).")
        try:
            audits = selectors.remote_assets_audit(page_size=min(max(page_size, 1), 500))
        except (StorageUnavailable, StorageRejected) as error:
            raise CommandError(f"Could not list the assets: {error}") from error

        orphans = [audit for audit in audits if audit.status == "orphaned"]
        for audit in audits:
            if audit.status == "orphaned" or verbosity >= 2:
                line = f"{audit.status:<10} {audit.storage:<17} {audit.public_id}"
                self.stdout.write(f"{line} ({audit.bytes} bytes, {audit.created_at})")
        counts = {status: sum(a.status == status for a in audits) for status in ("referenced", "pending", "orphaned")}
        self.stdout.write(
            f"{len(audits)} asset(s): {counts['referenced']} referenced by a result, "
            f"{counts['pending']} waiting in the deletion journal, {counts['orphaned']} orphaned."
        )
        if not orphans:
            return
        if not delete:
            self.stdout.write("Run again with --delete to destroy the orphaned assets.")
            return

        failed = 0
        for audit in orphans:
            try:
                deleted = services.remote_orphan_delete(storage=audit.storage, name=audit.name)
            except Exception as error:  # report every failure, go on with the others
                failed += 1
                self.stderr.write(f"could not destroy {audit.public_id}: {type(error).__name__}: {error}")
                continue
            self.stdout.write(f"{'destroyed' if deleted else 'claimed meanwhile, kept'} {audit.public_id}")
        if failed:
            raise CommandError(f"{failed} of {len(orphans)} orphaned asset(s) could not be destroyed; run it again.")
