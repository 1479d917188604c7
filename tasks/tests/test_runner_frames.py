"""Frames shrunk as they are taken, the frame budget and its thinning, and the GIF's bounded memory."""

import io
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from results.models import Result
from tasks import services
from tasks.models import Task
from tasks.runner import BrowserOptions, RunReport, render_artifacts, render_gif, run_browser
from tasks.runner.frames import FrameStore
from tasks.runner.gif import FRAME_COLOURS
from tasks.tests.factories import STEPS, TaskFactory, browser_options, report_for

FULL_HD = {"width": 1920, "height": 1080, "step_timeout_ms": 3_000, "navigation_timeout_ms": 10_000}
COLOURS = ["ff0000", "00a000", "0000ff", "ffa500", "800080", "00ced1", "ffff00", "a0522d", "ff1493"]


def encoded(image: Image.Image, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (0, 2, 4))


def close_to(actual, expected, tolerance=24) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def gif_centre_colours(data: bytes) -> list[tuple[int, int, int]]:
    """The colour in the middle of each GIF frame as a viewer shows it (composited over the previous ones)."""
    colours = []
    with Image.open(io.BytesIO(data)) as gif:
        for index in range(gif.n_frames):
            gif.seek(index)
            frame = gif.convert("RGB")
            colours.append(frame.getpixel((frame.width // 2, frame.height // 3)))
    return colours


@pytest.fixture(scope="module")
def colour_site():
    """Pages that are one flat colour (/<rrggbb>), so a frame says which step it shows."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 -- BaseHTTPRequestHandler's signature
            pass

        def do_GET(self):  # noqa: N802 -- BaseHTTPRequestHandler's naming
            colour = self.path.strip("/")[:6]
            body = f"<!doctype html><body style='margin:0;background:#{colour}'></body>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# -- the frame store, on its own -----------------------------------------------------------------


def kept_steps(store: FrameStore) -> list[int]:
    return [data[0] for data in store.frames]  # keep() is given bytes([step]) * size below


def test_frames_under_the_budget_are_all_kept():
    store = FrameStore(width=800, max_bytes=1_000)
    for step in range(10):
        store.keep(bytes([step]) * 100)
    assert kept_steps(store) == list(range(10))
    assert store.stride == 1 and store.total_bytes == 1_000


def test_over_the_budget_frames_are_thinned_evenly_keeping_the_first_and_the_latest():
    store = FrameStore(width=800, max_bytes=1_000)  # room for 10 frames of 100 bytes
    for step in range(40):
        store.keep(bytes([step]) * 100)
        kept = kept_steps(store)
        assert kept[0] == 0 and kept[-1] == step  # whatever was dropped, the first and the latest are there
        assert store.total_bytes <= 1_000
        grid = kept[:-1] if kept[-1] % store.stride else kept
        assert all(later - earlier == store.stride for earlier, later in zip(grid, grid[1:], strict=False))
    # 40 steps in 10 slots: one in 8 (0, 8, 16, 24, 32) plus the latest.
    assert store.stride == 8 and kept_steps(store) == [0, 8, 16, 24, 32, 39]
    assert store.taken == 40


@pytest.mark.parametrize("slots", range(1, 13))
def test_thinning_never_drops_the_first_or_the_latest_frame_whatever_the_budget(slots):
    store = FrameStore(width=800, max_bytes=slots * 100)
    for step in range(50):
        store.keep(bytes([step]) * 100)
        kept = kept_steps(store)
        assert kept[0] == 0 and kept[-1] == step, (slots, step, kept)
        assert len(kept) <= max(slots, 2) and kept == sorted(set(kept))


def test_two_frames_bigger_than_the_budget_are_still_the_first_and_the_latest():
    store = FrameStore(width=800, max_bytes=50)
    for step in range(7):
        store.keep(bytes([step]) * 100)
    assert kept_steps(store) == [0, 6]


def test_add_shrinks_a_screenshot_to_the_frame_width_and_the_frame_palette():
    full_hd = Image.effect_noise((1920, 1080), 60).convert("RGB")
    store = FrameStore(width=800, max_bytes=10**9)
    for kind in ("PNG", "JPEG"):
        assert store.add(encoded(full_hd, kind))
    for data in store.frames:
        frame = decoded(data)
        assert frame.format == "PNG" and frame.mode == "P"
        assert frame.size == (800, 450)
        assert frame.getextrema()[1] < FRAME_COLOURS  # the progress bar's palette entries stay free


def test_add_never_scales_up_and_skips_what_is_not_an_image():
    store = FrameStore(width=800, max_bytes=10**9)
    assert store.add(encoded(Image.new("RGB", (400, 300), "white")))
    assert decoded(store.frames[0]).size == (400, 300)
    assert not store.add(b"\x89PNG not really")
    assert not store.add(b"")
    assert len(store.frames) == 1 and store.taken == 1


# -- the warning in the result ---------------------------------------------------------------------


def test_thinned_frames_make_a_warning_and_a_gif_that_still_ends_on_the_last_step():
    frames = [encoded(Image.new("RGB", (640, 360), f"#{colour}")) for colour in COLOURS[:3]]
    report = RunReport(steps=[], frames=frames, frame_stride=4)
    options = BrowserOptions(max_frame_bytes=3 * 1024 * 1024)
    artifacts = render_artifacts(task_id=1, run_number=1, report=report, options=options, expected_status="success")
    assert artifacts.warnings == [
        "The screenshots outgrew the recording's limit of 3 MB; the GIF shows one step in 4, the first and the last."
    ]
    colours = gif_centre_colours(artifacts.files["gif"])
    assert [close_to(c, rgb(e), 2) for c, e in zip(colours, COLOURS[:3], strict=True)] == [True] * 3

    report.frame_stride = 1
    unthinned = render_artifacts(task_id=1, run_number=1, report=report, options=options, expected_status="success")
    assert unthinned.warnings == []


# -- real runs -------------------------------------------------------------------------------------


@pytest.mark.browser
def test_a_full_hd_run_keeps_small_frames_at_the_gif_width(local_site):
    steps = [
        {"action": "goto", "url": local_site.url("/")},
        {"action": "fill", "selector": "input[name=q]", "text": "desk lamp"},
        {"action": "press", "selector": "input[name=q]", "key": "Enter"},
        {"action": "goto", "url": local_site.url("/links")},
    ]
    report = run_browser(steps=steps, options=browser_options(**FULL_HD, frame_width=640))
    assert report.error == "" and len(report.frames) == 4 and report.frame_stride == 1
    sizes = [len(data) for data in report.frames]
    for data in report.frames:
        frame = decoded(data)
        assert frame.format == "PNG" and frame.mode == "P" and frame.size == (640, 360)
    # Measured: ~5-10 KB a frame for these pages (a 1920x1080 PNG screenshot of them is ~40-60 KB;
    # a photo-heavy page ~50 KB at 800 px against 1 MB). A frame kept at full size would be over 30 KB.
    assert max(sizes) < 30_000, sizes


@pytest.mark.browser
def test_a_run_over_a_tiny_budget_goes_on_and_its_gif_shows_the_first_and_the_last_step(colour_site):
    steps = [{"action": "goto", "url": f"{colour_site}/{colour}"} for colour in COLOURS]
    options = browser_options(**FULL_HD, max_frame_bytes=1)
    report = run_browser(steps=steps, options=options)

    assert report.error == "" and all(record.status == "ok" for record in report.history)  # the run went on
    assert len(report.frames) == 2 and report.frame_stride == 16  # 9 steps: thinned to the first and the last
    artifacts = render_artifacts(task_id=1, run_number=1, report=report, options=options, expected_status="success")
    assert "the GIF shows one step in 16, the first and the last" in artifacts.warnings[0]
    first, last = gif_centre_colours(artifacts.files["gif"])
    assert close_to(first, rgb(COLOURS[0])) and close_to(last, rgb(COLOURS[-1])), (first, last)


@pytest.mark.browser
def test_a_budget_of_a_few_frames_keeps_every_other_step(colour_site):
    steps = [{"action": "goto", "url": f"{colour_site}/{colour}"} for colour in COLOURS]
    probe = run_browser(steps=steps[:1], options=browser_options(**FULL_HD))
    one_frame = len(probe.frames[0])  # a flat page: every frame is about this size
    report = run_browser(steps=steps, options=browser_options(**FULL_HD, max_frame_bytes=int(one_frame * 5.5)))

    assert report.frame_stride == 2
    shown = gif_centre_colours(render_gif(report.frames))
    assert [close_to(c, rgb(e)) for c, e in zip(shown, COLOURS[::2], strict=True)] == [True] * 5  # steps 0, 2, 4, 6, 8


# -- the GIF's memory ------------------------------------------------------------------------------

RENDER_IN_A_FRESH_PROCESS = """
import io, json, resource, sys
from PIL import Image
from tasks.runner.gif import render_gif
def png(i):
    buffer = io.BytesIO()
    Image.new("RGB", (1920, 1080), (i * 6 % 256, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()
frames = [png(i) for i in range(40)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = render_gif(frames, max_width=800)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mb": (after - before) / 1024, "frames": Image.open(io.BytesIO(data)).n_frames}))
"""


def test_render_gif_decodes_one_frame_at_a_time():
    # 40 full-HD screenshots decode to 6.2 MB each: holding them all (as render_gif once did) is ~250 MB.
    completed = subprocess.run(  # noqa: S603 -- our own interpreter and code
        [sys.executable, "-c", RENDER_IN_A_FRESH_PROCESS], capture_output=True, text=True, timeout=120, check=True
    )
    measured = json.loads(completed.stdout)
    assert measured["frames"] == 40
    assert measured["growth_mb"] < 60, measured


# -- through the services: the settings reach the runner, the warning reaches the result ----------


@pytest.mark.django_db
@pytest.mark.usefixtures("media_root")
def test_the_frame_settings_reach_the_runner_and_the_warning_the_result(user, settings):
    settings.RESULTS_GIF_MAX_WIDTH = 320
    settings.TASKS_MAX_FRAME_BYTES = 2 * 1024 * 1024
    task = TaskFactory(owner=user)
    services.task_initiate(task=task, instruction="check", steps=STEPS)
    claim = services.task_run_claim(task_id=task.pk, run_number=1)
    assert (claim.options.frame_width, claim.options.max_frame_bytes) == (320, 2 * 1024 * 1024)

    report = report_for(claim)
    report.frame_stride = 2
    assert services.task_run_record(claim=claim, report=report, error="")
    assert Result.objects.get(task=task).warnings == [
        "The screenshots outgrew the recording's limit of 2 MB; the GIF shows one step in 2, the first and the last."
    ]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("media_root")
def test_a_real_run_over_the_budget_completes_with_the_warning(user, settings, colour_site):
    settings.TASKS_MAX_FRAME_BYTES = 1
    task = TaskFactory(owner=user)
    steps = [{"action": "goto", "url": f"{colour_site}/{colour}"} for colour in COLOURS[:3]]
    services.task_initiate(task=task, instruction="colours", steps=steps, expected_status="failure")

    services.task_run_execute(task_id=task.pk, run_number=1)

    task.refresh_from_db()
    assert task.status == "completed", task.error
    result = Result.objects.get(task=task)
    assert result.warnings == [
        "The screenshots outgrew the recording's limit of 1 byte; the GIF shows one step in 4, the first and the last."
    ]
    assert Task.objects.filter(pk=task.pk, progress_done=3).exists()  # every step ran
