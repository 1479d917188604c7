"""Fill the database with posts and votes, fast, for benchmarks and demos."""

import contextlib
import io
import random
import sys
import time
from datetime import UTC, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import User
from posts.models import Post, Vote

SEED_USERNAME = "seed{:06d}"
# Seeded users cannot log in: an unusable password hash (a "!" prefix, as Django's own).
UNUSABLE_PASSWORD = "!seeded-user-cannot-log-in"
WORDS = [
    *("gate", "house", "token", "session", "key", "vote", "post", "list", "cursor", "index", "query", "page"),
    *("fast", "slow", "user", "author", "django", "python", "postgres", "redis", "worker", "browser"),
    *("script", "result", "record", "frame", "step", "plan", "run", "test"),
]


class Progress:
    """A one-line progress bar on stderr (a line per 10% when stderr is not a terminal)."""

    def __init__(self, label: str, total: int, stream=None):
        self.label, self.total, self.done = label, max(total, 1), 0
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.started = time.monotonic()
        self._last_decile = -1

    def advance(self, n: int) -> None:
        self.done += n
        fraction = min(self.done / self.total, 1.0)
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed else 0
        bar = "#" * int(fraction * 30)
        line = (
            f"{self.label:>6} [{bar:<30}] {fraction:6.1%} {self.done:>10,}/{self.total:,} "
            f"{rate:>9,.0f}/s {elapsed:6.1f}s"
        )
        if self.tty:
            self.stream.write("\r" + line)
        elif int(fraction * 10) != self._last_decile:
            self._last_decile = int(fraction * 10)
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Command(BaseCommand):
    help = (
        "Add N posts by a pool of seed users (seed000001...) and random votes for them, in batches: "
        "COPY on PostgreSQL (with --reset, about a minute for a million posts and two million votes), "
        "bulk_create elsewhere. "
        "Each post gets its own created_at (one per --spacing seconds, ending now) so cursor pages "
        "stay exact; vote_count is written consistent with the votes. Seeded users cannot log in. "
        "Example: manage.py seed_posts --posts 1000000 --votes-per-post 2"
    )

    def add_arguments(self, parser):
        parser.add_argument("--posts", type=int, default=1000, help="How many posts to add (default 1000).")
        parser.add_argument("--users", type=int, default=1000, help="Size of the seed-user pool (default 1000).")
        parser.add_argument(
            "--votes-per-post", type=float, default=2.0, help="Average votes per post, 0..users (default 2)."
        )
        parser.add_argument("--batch-size", type=int, default=50_000, help="Rows per COPY/bulk_create batch.")
        parser.add_argument("--spacing", type=float, default=1.0, help="Seconds between two posts (default 1).")
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for a reproducible data set.")
        parser.add_argument(
            "--reset",
            action="store_true",
            help="DELETE every post and vote (of every user) first. On PostgreSQL this also enables the fast "
            "bulk-load mode (COPY FREEZE, indexes built after the load, foreign keys checked in one pass "
            "when connected as a superuser); the posts tables are locked until the command ends.",
        )
        parser.add_argument("--no-analyze", action="store_true", help="Skip VACUUM ANALYZE after seeding.")

    def handle(self, *args, posts, users, votes_per_post, batch_size, spacing, seed, reset, no_analyze, **options):
        if posts < 0 or users < 1 or batch_size < 1 or spacing <= 0:
            raise CommandError("--posts must be >= 0, --users and --batch-size >= 1, --spacing > 0.")
        if not 0 <= votes_per_post <= users:
            raise CommandError("--votes-per-post must be between 0 and --users.")
        self.random = random.Random(seed)  # noqa: S311  (sample data, not secrets)
        self.postgres = connection.vendor == "postgresql"
        self.batch_size = batch_size
        started = time.monotonic()

        # One transaction: all or nothing, and nobody sees the tables half-loaded.
        with transaction.atomic():
            self.bulk_load = reset and self.postgres
            if self.bulk_load:
                with self._bulk_load_mode():
                    user_ids = self._seed_users(users)
                    post_count, vote_count = self._seed_posts(posts, user_ids, votes_per_post, spacing)
            else:
                if reset:
                    self._reset()
                user_ids = self._seed_users(users)
                post_count, vote_count = self._seed_posts(posts, user_ids, votes_per_post, spacing)
        if self.postgres and not no_analyze:
            with connection.cursor() as cursor:
                # Fresh statistics for the planner, and a visibility map for index-only scans.
                cursor.execute(f"VACUUM (ANALYZE) {Post._meta.db_table}, {Vote._meta.db_table}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Added {post_count:,} posts and {vote_count:,} votes by {len(user_ids):,} seed users "
                f"in {time.monotonic() - started:.1f}s ({'COPY' if self.postgres else 'bulk_create'})."
            )
        )

    def _reset(self) -> None:
        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {Vote._meta.db_table}, {Post._meta.db_table} RESTART IDENTITY")
        else:
            Vote.objects.all().delete()
            Post.objects.all().delete()
        self.stdout.write("Deleted every post and vote.")

    @contextlib.contextmanager
    def _bulk_load_mode(self):
        """PostgreSQL's recipe for a bulk load (https://www.postgresql.org/docs/current/populate.html), made safe
        by running inside the transaction that empties the tables: nobody sees them without their indexes, and
        any failure rolls everything back.

        - TRUNCATE first, so that COPY ... FREEZE writes the rows frozen: no VACUUM pass to rewrite them later.
        - The posts tables' secondary indexes and unique constraints are dropped and built again after the
          load: one sort each instead of millions of random index insertions.
        - Foreign keys stay, but a superuser skips their row-by-row checks (session_replication_role =
          replica, for this transaction only) and checks every reference once at the end with one join per
          key instead. Dropping them instead would lock accounts_user (ACCESS EXCLUSIVE) against every
          login and authenticated request for as long as the load takes.
        """
        tables = [Post._meta.db_table, Vote._meta.db_table]
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            superuser = cursor.fetchone()[0]
            self._reset()
            cursor.execute(
                """
                SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                WHERE conrelid = ANY(%s::regclass[]) AND contype = 'u'
                """,
                [tables],
            )
            unique_constraints = cursor.fetchall()
            cursor.execute(
                """
                SELECT indexname, indexdef FROM pg_indexes
                WHERE schemaname = current_schema() AND tablename = ANY(%s)
                  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = ANY(%s::regclass[]))
                """,
                [tables, tables],
            )
            indexes = cursor.fetchall()
            for table, name, _ in unique_constraints:
                cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {connection.ops.quote_name(name)}")
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
            if superuser:
                cursor.execute("SET LOCAL session_replication_role = replica")
        yield
        started = time.monotonic()
        with connection.cursor() as cursor:
            if superuser:
                cursor.execute("SET LOCAL session_replication_role = DEFAULT")
                self._check_references(cursor)
            cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
            for _, definition in indexes:
                cursor.execute(definition)
            for table, name, definition in unique_constraints:
                cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {connection.ops.quote_name(name)} {definition}")
        self.stderr.write(
            f"Built {len(indexes) + len(unique_constraints)} indexes"
            + (" and checked every foreign key" if superuser else "")
            + f" in {time.monotonic() - started:.1f}s."
        )

    @staticmethod
    def _check_references(cursor) -> None:
        """What the skipped foreign key triggers would have checked, as one anti-join per key."""
        for model in (Post, Vote):
            for field in model._meta.concrete_fields:
                if not field.is_relation:
                    continue
                target = field.related_model._meta
                cursor.execute(
                    f"SELECT 1 FROM {model._meta.db_table} AS child "  # noqa: S608  (table and column names)
                    f"WHERE NOT EXISTS (SELECT 1 FROM {target.db_table} AS parent "
                    f"WHERE parent.{target.pk.column} = child.{field.column}) LIMIT 1"
                )
                if cursor.fetchone():
                    raise CommandError(f"{model.__name__}.{field.name} refers to a missing {target.object_name}.")

    def _seed_users(self, count: int) -> list[int]:
        names = [SEED_USERNAME.format(n) for n in range(1, count + 1)]
        now = timezone.now()
        for start in range(0, count, self.batch_size):
            User.objects.bulk_create(
                [
                    User(username=name, password=UNUSABLE_PASSWORD, date_joined=now, tokens_valid_after=now)
                    for name in names[start : start + self.batch_size]
                ],
                ignore_conflicts=True,  # reuse the pool of an earlier run
                batch_size=5000,
            )
        ids = []
        for start in range(0, count, 5000):
            ids += User.objects.filter(username__in=names[start : start + 5000]).values_list("pk", flat=True)
        return sorted(ids)

    def _seed_posts(self, count, user_ids, votes_per_post, spacing) -> tuple[int, int]:
        if count == 0:
            return 0, 0
        rand = self.random
        first_id = self._reserve_post_ids(count)
        sentences = [" ".join(rand.choices(WORDS, k=rand.randint(3, 40))).capitalize() + "." for _ in range(2000)]
        spacing_us = int(spacing * 1_000_000)
        # Oldest first, one post per `spacing`, the newest now; the jitter keeps two runs' posts apart.
        oldest = timezone.now().astimezone(UTC) - timedelta(microseconds=spacing_us * count)
        most_votes = min(len(user_ids), max(0, round(2 * votes_per_post)))
        progress = Progress("posts", count, stream=self.stderr._out)
        total_votes = 0
        for batch_start in range(0, count, self.batch_size):
            posts, votes = [], []
            for i in range(batch_start, min(batch_start + self.batch_size, count)):
                post_id = first_id + i
                created = oldest + timedelta(microseconds=spacing_us * i + rand.randrange(max(spacing_us - 1, 1)))
                voters = rand.sample(user_ids, rand.randint(0, most_votes)) if most_votes else []
                text = f"{rand.choice(sentences)} #{post_id}"
                posts.append((post_id, rand.choice(user_ids), text, len(voters), created))
                votes.extend((voter, post_id, created) for voter in voters)
            self._write(posts, votes)
            total_votes += len(votes)
            progress.advance(len(posts))
        progress.close()
        if self.postgres:
            with connection.cursor() as cursor:
                # The ids were given explicitly: move the sequence past them.
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [Post._meta.db_table, first_id + count - 1]
                )
        return count, total_votes

    def _reserve_post_ids(self, count: int) -> int:
        """The first of `count` consecutive ids no one else can take while this transaction lasts."""
        if self.postgres:
            with connection.cursor() as cursor:
                # Blocks other writers of posts until commit; readers go on.
                cursor.execute(f"LOCK TABLE {Post._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        return (Post.objects.aggregate(last=Max("id"))["last"] or 0) + 1

    def _write(self, posts, votes) -> None:
        if self.postgres:
            self._copy(
                f"COPY {Post._meta.db_table} (id, author_id, content, vote_count, created_at, updated_at) FROM STDIN",
                (
                    f"{pid}\t{author}\t{text}\t{n}\t{ts.isoformat()}\t{ts.isoformat()}\n"
                    for pid, author, text, n, ts in posts
                ),
            )
            self._copy(
                f"COPY {Vote._meta.db_table} (user_id, post_id, created_at) FROM STDIN{self._options}",
                (f"{user}\t{pid}\t{ts.isoformat()}\n" for user, pid, ts in votes),
            )
            return
        Post.objects.bulk_create(
            [
                Post(id=pid, author_id=author, content=text, vote_count=n, created_at=ts, updated_at=ts)
                for pid, author, text, n, ts in posts
            ],
            batch_size=500,
        )
        Vote.objects.bulk_create(
            [Vote(user_id=user, post_id=pid, created_at=ts) for user, pid, ts in votes], batch_size=500
        )

    @property
    def _options(self) -> str:
        return " WITH (FREEZE)" if self.bulk_load else ""

    @staticmethod
    def _copy(statement: str, lines) -> None:
        # Text format: seeded content has no tab, newline or backslash to escape.
        buffer = io.StringIO()
        buffer.writelines(lines)
        with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            copy.write(buffer.getvalue())
