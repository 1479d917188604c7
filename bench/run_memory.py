#!/usr/bin/env python
"""Measure the memory of one browser run: peak RSS of run_browser + render_artifacts, and the frame bytes kept.

Each measurement runs in a fresh Python process (a child of this script), so its peak RSS is
that run's alone: `resource.getrusage(RUSAGE_SELF).ru_maxrss` of the process that holds the
frames and renders the GIF. Chromium and Playwright's driver are other processes and are not
counted. The child serves its own page on 127.0.0.1 (no database, broker or Django), a long
page of text, gradient cards and noisy canvas "photos" (the photos are what makes real
screenshots heavy), and runs `goto` + `press PageDown` steps down it, with a fresh `goto`
every 10th step. The page is the same for every run (seeded), so two checkouts compare fairly:

    .venv/bin/python bench/run_memory.py                                   # this checkout, 100 steps at 1920x1080
    .venv/bin/python bench/run_memory.py --code /work/wt-before --code .   # before and after, side by side

`--code DIR` is the checkout whose `tasks.runner` the child imports (repeat it to compare),
each run with the BrowserOptions defaults of that checkout. Needs Chromium and the project's
virtualenv; takes about a minute per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
WORDS = [
    *("gate", "house", "browser", "task", "frame", "recording", "palette", "quantise", "worker", "queue"),
    *("result", "history", "script", "replay", "lamp", "table", "sofa", "garden", "desk", "chair", "shelf"),
    *("oak", "linen", "copper", "glass", "marble", "velvet", "wool", "cotton"),
]
SECTIONS = 40  # sections per page, about 1000 px each: deeper than 10 PageDowns go

CANVAS_SCRIPT = """<script>
function paint(canvas, seed) {
  let s = seed >>> 0;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 4294967296);
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  for (let i = 0; i < 12; i++) {  // soft blobs, like the shapes of a photo
    const g = ctx.createRadialGradient(rnd() * w, rnd() * h, 0, rnd() * w, rnd() * h, 60 + rnd() * 220);
    g.addColorStop(0, `hsl(${rnd() * 360}, 70%, ${30 + rnd() * 50}%)`);
    g.addColorStop(1, "rgba(0,0,0,0)");
    ctx.fillStyle = g; ctx.fillRect(0, 0, w, h);
  }
  const image = ctx.getImageData(0, 0, w, h), d = image.data;  // sensor noise: what defeats compression
  for (let i = 0; i < d.length; i += 4) { const n = (rnd() - 0.5) * 48; d[i] += n; d[i + 1] += n; d[i + 2] += n; }
  ctx.putImageData(image, 0, 0);
}
document.querySelectorAll("canvas").forEach((c) => paint(c, Number(c.dataset.seed)));
</script>"""


def page(seed: int) -> bytes:
    """A long, varied page; the same seed gives the same page."""
    rng = random.Random(seed)  # noqa: S311 -- page content, not a secret
    parts = [
        "<!doctype html><html><head><meta charset=utf-8><title>Memory bench</title><style>"
        "body{font-family:sans-serif;margin:0 2rem;color:#1f2937} section{min-height:1000px}"
        ".cards{display:flex;gap:1rem} .card{flex:1;height:220px;border-radius:12px;padding:1rem;color:white}"
        "canvas{display:block;margin:1rem 0;border-radius:8px}</style></head><body>"
    ]
    for index in range(SECTIONS):
        words = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))  # noqa: E731 -- a local shorthand
        hue = rng.randrange(360)
        cards = "".join(
            f'<div class=card style="background:linear-gradient({rng.randrange(360)}deg,'
            f'hsl({(hue + 40 * k) % 360},70%,45%),hsl({(hue + 40 * k + 90) % 360},60%,60%))">{words(12)}</div>'
            for k in range(3)
        )
        parts.append(
            f"<section><h2>Section {index + 1}: {words(4)}</h2><p>{words(90)}</p><div class=cards>{cards}</div>"
            f'<canvas width=1400 height=420 data-seed="{seed * 1000 + index}"></canvas><p>{words(60)}</p></section>'
        )
    parts.append(CANVAS_SCRIPT + "</body></html>")
    return "".join(parts).encode()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 -- BaseHTTPRequestHandler's signature
        pass

    def do_GET(self):  # noqa: N802 -- BaseHTTPRequestHandler's naming
        seed = int(parse_qs(urlsplit(self.path).query).get("seed", ["0"])[0])
        body = page(seed)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def bench_steps(base_url: str, count: int) -> list[dict]:
    steps = []
    for index in range(count):
        if index % 10 == 0:
            steps.append({"action": "goto", "url": f"{base_url}/?seed={index // 10}"})
        else:
            steps.append({"action": "press", "key": "PageDown"})
    return steps


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def child(args) -> None:
    """One measured run, in this fresh process; prints one JSON line."""
    code = str(Path(args.code[0]).resolve())
    sys.path.insert(0, code)
    from tasks import runner

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    # Later checkouts put every connection through the egress proxy (the page is on 127.0.0.1) and start
    # Chromium's sandbox, which cannot start as root; older ones have neither option.
    wanted = {"egress_allowlist": ("127.0.0.1",), "no_sandbox": os.geteuid() == 0}
    known = {f.name for f in dataclasses.fields(runner.BrowserOptions)}
    extra = {name: value for name, value in wanted.items() if name in known}
    options = runner.BrowserOptions(width=args.width, height=args.height, **extra)
    steps = bench_steps(base_url, args.steps)
    rss_start = peak_rss_mb()
    started = time.monotonic()
    report = runner.run_browser(steps=steps, options=options)
    run_seconds = time.monotonic() - started
    rss_after_run = peak_rss_mb()
    frame_bytes = sum(len(frame) for frame in report.frames)
    started = time.monotonic()
    artifacts = runner.render_artifacts(
        task_id=1, run_number=1, report=report, options=options, expected_status="failure"
    )
    render_seconds = time.monotonic() - started
    from PIL import Image

    with Image.open(io.BytesIO(report.frames[0])) as first:
        frame_size = f"{first.width}x{first.height} {first.mode}"
    server.shutdown()
    result = {
        "code": code,
        "runner": runner.__file__,
        "error": report.error,
        "frames": len(report.frames),
        "frame_size": frame_size,
        "frame_bytes": frame_bytes,
        "gif_bytes": len(artifacts.files["gif"]),
        "warnings": artifacts.warnings,
        "rss_start_mb": round(rss_start, 1),
        "rss_after_run_mb": round(rss_after_run, 1),
        "rss_peak_mb": round(peak_rss_mb(), 1),
        "run_seconds": round(run_seconds, 1),
        "render_seconds": round(render_seconds, 1),
    }
    print(json.dumps(result))


def measure(code: str, args) -> dict:
    command = [sys.executable, __file__, "--child", "--code", code]
    command += ["--steps", str(args.steps), "--width", str(args.width), "--height", str(args.height)]
    completed = subprocess.run(  # noqa: S603 -- this script, fixed arguments
        command, capture_output=True, text=True, check=False, cwd=code, env={**os.environ, "PYTHONPATH": ""}
    )
    if completed.returncode != 0:
        raise SystemExit(f"the run for {code} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", action="append", help="checkout to import tasks.runner from (repeatable)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print each result as a JSON line")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    for code in args.code or [str(BASE_DIR)]:
        result = measure(code, args)
        if args.json:
            print(json.dumps(result))
            continue
        error = f"  ERROR {result['error']}" if result["error"] else ""
        print(f"{code}: {args.steps} steps at {args.width}x{args.height}{error}")
        print(
            f"  peak RSS {result['rss_peak_mb']:.0f} MB (after imports {result['rss_start_mb']:.0f} MB, "
            f"after the run {result['rss_after_run_mb']:.0f} MB)"
        )
        print(
            f"  frames kept: {result['frames']} x {result['frame_size']}, {result['frame_bytes'] / 1e6:.1f} MB; "
            f"GIF {result['gif_bytes'] / 1e6:.1f} MB; "
            f"run {result['run_seconds']} s, render {result['render_seconds']} s"
        )
        for warning in result["warnings"]:
            print(f"  warning: {warning}")


if __name__ == "__main__":
    main()
