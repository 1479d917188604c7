"""Does the post list stay fast at a million posts? GET /api/v1/posts at 1,000 and at 1,000,000 posts.

    .venv/bin/python bench/posts.py [--sizes 1000,1000000] [--duration 5] [--rounds 3] [--connections 4]
                                    [--reuse] [--max-ratio 1.5]

Starts Gatehouse the production way (gunicorn with config/gunicorn.py, config.settings.production,
PostgreSQL, Redis; see bench/harness.py), one server per size, each on its own database
`gatehouse_bench_posts_<size>` (BENCH_POSTS_DATABASE_URL sets the name's stem; databases are
created if missing and their posts REPLACED). Each is seeded with `manage.py seed_posts --reset`
(COPY; about 2 votes a post; a pool of size/50 seed users, at most 1,000, so that one author's
posts have deep pages too; --reuse keeps a database that already holds exactly that many posts).
The script logs in over HTTP as one of the seed users (who wrote and voted like the others)
and loads each server with wrk:

- first page:       GET /api/v1/posts
- deep page:        GET /api/v1/posts?cursor=... positioned 90% of the way down the whole list
- author, first:    GET /api/v1/posts?author=seed000002
- author, deep:     the same, 90% of the way down that author's posts

Deep cursors are built the way DRF builds them, from the created_at of the post at that
depth, and checked: the page must start with exactly the post that follows it. Every scenario
of every size runs once per round, interleaved (so background load on a shared machine hits
the sizes alike); the table gives requests/s and p50/p99 latency (medians of the rounds) and,
for the largest size, each p50 as a multiple of the same scenario's p50 at the smallest size.
It also runs each page's own SQL (built by the same selector, filtered as the cursor filters it)
under EXPLAIN (ANALYZE, BUFFERS): its execution time and the buffers it touched do not depend on
what else the machine is running.
With --max-ratio the script exits 1 when such a multiple is above it (the acceptance: 1.5).
"""

import argparse
import base64
import contextlib
import json
import os
import sys
import time
import urllib.parse
from datetime import UTC

import psycopg
from harness import format_table, run_rounds, run_wrk, start_server

DATABASE_STEM = os.environ.get("BENCH_POSTS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gatehouse_bench_posts")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
PORT = int(os.environ.get("BENCH_PORT", 8776))
POSTS = "/api/v1/posts"
VIEWER = "seed000001"
AUTHOR = "seed000002"
# A throwaway password for a seed user of the throwaway benchmark database.
PASSWORD = "bench-posts-not-a-secret-9d21"
DEPTH = 0.9
PAGE_SIZE = 20  # the API's default page size
SCENARIOS = ("first page", "deep page", "author, first page", "author, deep page")


def _expect(status, body, wanted, what):
    if status != wanted:
        raise SystemExit(f"{what}: expected HTTP {wanted}, got {status}: {body}")
    return body


def database_url(size: int) -> str:
    return f"{DATABASE_STEM}_{size}"


def _connect(url: str):
    return psycopg.connect(url.replace("postgres://", "postgresql://", 1))


def drf_cursor(position: str) -> str:
    """The cursor DRF's CursorPagination puts in a `next` link after the post created at `position`."""
    return base64.b64encode(urllib.parse.urlencode({"p": position}).encode("ascii")).decode("ascii")


def deep_position(url: str, author: str | None) -> tuple[str, int, int]:
    """(cursor position, id of the first post of that page, depth in posts) for a page DEPTH of the way down
    (or the last full page with a next link, when fewer posts lie below that depth)."""
    where, params = "", []
    if author is not None:
        where, params = "WHERE author_id = (SELECT id FROM accounts_user WHERE username = %s)", [author]
    with _connect(url) as connection:
        total = connection.execute(f"SELECT count(*) FROM posts_post {where}", params).fetchone()[0]  # noqa: S608
        offset = min(int(total * DEPTH), total - PAGE_SIZE - 2)
        rows = connection.execute(
            f"SELECT id, created_at FROM posts_post {where} ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 2",  # noqa: S608
            [*params, offset],
        ).fetchall()
    (_, created_at), (next_id, _) = rows
    # str() of the model's aware datetime in UTC, as DRF writes it
    return str(created_at.astimezone(UTC)), next_id, offset + 1


def seed_users(size: int) -> int:
    """Authors in the pool: 50 posts each up to 1,000 authors, so an author's list has deep pages at any size."""
    return max(10, min(1000, size // 50))


def seed(server, size: int, reuse: bool) -> str:
    if reuse:
        with contextlib.suppress(psycopg.Error), _connect(server.env["DATABASE_URL"]) as connection:
            if connection.execute("SELECT count(*) FROM posts_post").fetchone()[0] == size:
                return "reused the posts already there (--reuse)"
    started = time.monotonic()
    users = str(seed_users(size))
    done = server.manage(
        "seed_posts", "--posts", str(size), "--users", users, "--votes-per-post", "2", "--reset", "--seed", "42"
    )
    summary = done.stdout.strip().splitlines()[-1]
    return f"{summary} [{time.monotonic() - started:.0f}s with the process start]"


def log_in(server) -> dict[str, str]:
    """A JWT of the seed user VIEWER (seed users have no usable password: give it one first)."""
    # Straight on the model: a setup step of a throwaway benchmark account, not a feature.
    code = (
        "from accounts.models import User; "
        f"user = User.objects.get(username={VIEWER!r}); user.set_password({PASSWORD!r}); "
        "user.save(update_fields=['password'])"
    )
    server.manage("shell", "-c", code)
    status, body = server.request("POST", "/api/v1/auth/login", {"username": VIEWER, "password": PASSWORD})
    return {
        "Accept": "application/json",
        "Authorization": f"Bearer {_expect(status, body, 200, 'login')['access_token']}",
    }


def scenarios_for(server, headers) -> tuple[dict[str, str], dict[str, tuple], str]:
    """The four URLs, each checked to answer a full page (deep ones: the intended page); for each, the
    (author, cursor position) of its query; and a note saying how deep the deep pages are."""
    urls = {"first page": POSTS, "author, first page": f"{POSTS}?author={AUTHOR}"}
    queries = {"first page": (None, None), "author, first page": (AUTHOR, None)}
    depths = {}
    for name, author in (("deep page", None), ("author, deep page", AUTHOR)):
        position, expected_first_id, depths[name] = deep_position(server.env["DATABASE_URL"], author)
        queries[name] = (author, position)
        query = {"cursor": drf_cursor(position), **({"author": author} if author else {})}
        urls[name] = f"{POSTS}?{urllib.parse.urlencode(query)}"
        body = _expect(*server.request("GET", urls[name], headers=headers), 200, name)
        if body["results"][0]["id"] != expected_first_id:
            raise SystemExit(f"{name}: the cursor did not land where intended: {body['results'][0]['id']}")
    for name in SCENARIOS:
        body = _expect(*server.request("GET", urls[name], headers=headers), 200, name)
        if len(body["results"]) != PAGE_SIZE or not body["next"]:
            raise SystemExit(f"{name}: expected a full page with a next link, got {len(body['results'])} posts")
    note = (
        f"deep page after {depths['deep page']:,} posts; "
        f"author deep page after {depths['author, deep page']:,} of {AUTHOR}'s posts"
    )
    return urls, queries, note


# Runs in `manage.py shell` with the server's settings: the page's own query, built by the same
# selector and filtered as DRF's cursor pagination filters it, under EXPLAIN (ANALYZE, BUFFERS).
_EXPLAIN = """
import json, statistics
from accounts.models import User
from posts.selectors import post_list
viewer = User.objects.get(username=VIEWER)
costs = {}
for name, (author, position) in QUERIES.items():
    page = post_list(viewer=viewer, author=author)
    if position:
        page = page.filter(created_at__lt=position)
    runs = [json.loads(page[: PAGE_SIZE + 1].explain(analyze=True, buffers=True, format="json"))[0] for _ in range(7)]
    plan = runs[-1]["Plan"]
    buffers = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
    costs[name] = [statistics.median(run["Execution Time"] for run in runs), buffers]
print(json.dumps(costs))
"""


def query_costs(server, queries) -> dict[str, tuple[float, int]]:
    """Per scenario: the page query's execution time in PostgreSQL (ms, median of 7 warm runs) and the
    8 kB buffers it touched. Unlike latency under wrk, neither depends on what else the machine runs."""
    code = f"VIEWER = {VIEWER!r}\nPAGE_SIZE = {PAGE_SIZE}\nQUERIES = {queries!r}\n{_EXPLAIN}"
    done = server.manage("shell", "-c", code)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,1000000", help="comma-separated numbers of posts")
    parser.add_argument("--duration", type=float, default=5, help="seconds of load per scenario and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians")
    parser.add_argument("--connections", type=int, default=4, help="concurrent wrk connections")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: config/gunicorn.py)")
    parser.add_argument("--reuse", action="store_true", help="keep a database that already has that many posts")
    parser.add_argument("--max-ratio", type=float, default=0.0, help="exit 1 if a p50 grew by more than this")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    started = time.monotonic()

    def say(message):
        print(f"[{time.monotonic() - started:5.0f}s] {message}", file=sys.stderr)

    notes, scenarios, costs = [], {}, {}
    with contextlib.ExitStack() as servers:
        for index, size in enumerate(sizes):
            say(f"Starting a server on {database_url(size)} ...")
            overrides = {
                "DATABASE_URL": database_url(size),
                "REDIS_URL": REDIS_URL,
                "CELERY_BROKER_URL": REDIS_URL,
                # Worker recycling (every 1000 requests in production) would add cold starts at
                # random points of one size's run and not the other's; this compares queries.
                "GUNICORN_MAX_REQUESTS": "0",
            }
            server = servers.enter_context(start_server(overrides, port=PORT + index, workers=options.workers))
            say(f"Seeding {size:,} posts ...")
            notes.append(f"{size:>9,}: {seed(server, size, options.reuse)}")
            headers = log_in(server)
            urls, queries, note = scenarios_for(server, headers)
            notes.append(f"{size:>9,}: {note}")
            costs[size] = query_costs(server, queries)
            for name in SCENARIOS:
                url = server.url(urls[name])
                scenarios[(name, size)] = lambda url=url, headers=headers, duration=options.duration: run_wrk(
                    url, headers=headers, duration=duration, connections=options.connections
                )
        description = server.description

        say(f"Warming up, then {options.rounds} rounds of {len(scenarios)} scenarios x {options.duration:.0f}s ...")
        for scenario in scenarios.values():
            scenario(duration=2)
        results = run_rounds(scenarios, rounds=options.rounds)

    smallest, largest = sizes[0], sizes[-1]
    rows, worst = [], 0.0
    for name in SCENARIOS:
        for size in sizes:
            figures = results[(name, size)]
            ratio = figures["p50_ms"] / results[(name, smallest)]["p50_ms"]
            if size == largest and size != smallest:
                worst = max(worst, ratio)
            rows.append(
                [
                    f"{name} @ {size:,}",
                    f"{figures['rps']:.0f}",
                    f"{figures['p50_ms']:.2f}",
                    f"{figures['p99_ms']:.2f}",
                    f"{ratio:.2f}x" if size != smallest else "-",
                    f"{costs[size][name][0]:.3f}",
                    str(costs[size][name][1]),
                ]
            )
    print()
    print(
        f"GET {POSTS} (page of {PAGE_SIZE}, JWT) -- {description} per size, wrk {options.connections} connections, "
        f"{options.rounds} interleaved rounds x {options.duration:.0f}s, medians"
    )
    print(
        format_table(
            ["scenario @ posts", "req/s", "p50 ms", "p99 ms", f"p50 vs {smallest:,}", "SQL ms", "SQL buffers"], rows
        )
    )
    print("SQL ms / buffers: the page's query under EXPLAIN (ANALYZE, BUFFERS), median of 7 warm runs.")
    print()
    for note in notes:
        print(note)
    print(f"Total run time: {time.monotonic() - started:.0f}s")
    if options.max_ratio and len(sizes) > 1 and worst > options.max_ratio:
        print(f"\nFAIL: a p50 at {largest:,} posts is {worst:.2f}x that at {smallest:,} (> {options.max_ratio})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
