"""render_gif, render_script and render_artifacts: the recording, the replay script and the files of a run."""

import ast
import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from tasks.runner import (
    BrowserOptions,
    RunReport,
    StepRecord,
    StepValidationError,
    history_document,
    plan_steps,
    render_artifacts,
    render_gif,
    render_script,
    run_browser,
)
from tasks.runner.gif import MAX_FRAMES
from tasks.tests.factories import browser_options, script_environment

OPTIONS = browser_options(width=800, height=600, step_timeout_ms=3_000, navigation_timeout_ms=10_000)
SCRIPT_TIMEOUT_SECONDS = 120

NASTY = [
    "single ' quote",
    'double " quote',
    "triple ''' single",
    'triple """ double',
    "back\\slash and trailing \\",
    "new\nline and \r\n windows and \t tab",
    "unicode Ünïcødé ✓ 漢字 🚀 and \u2028 line separator",
    "{braces} {0} {__import__('os')} %s %(x)s",
    "'); import os; os.system('echo pwned') #",
    '"""); __import__("os").system("echo pwned") #',
    "\\N{BULLET} \\x41 \\u0041",
]


def png(colour, size=(1280, 720)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def gif_frames(data: bytes) -> tuple[int, tuple[int, int], list[int]]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "GIF"
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            durations.append(image.info.get("duration"))
        return image.n_frames, image.size, durations


def string_constants(source: str) -> set[str]:
    nodes = ast.walk(ast.parse(source))
    return {node.value for node in nodes if isinstance(node, ast.Constant) and isinstance(node.value, str)}


# -- GIF ------------------------------------------------------------------------------------------


def test_gif_has_one_scaled_frame_per_screenshot():
    frames = [png("white"), png("red"), png("white"), png("white"), png("blue")]
    data = render_gif(frames, max_width=640, frame_ms=700)
    count, size, durations = gif_frames(data)
    assert count == 5  # identical screenshots (3 and 4) stay separate frames
    assert size[0] == 640 and size[1] <= 640 * 720 // 1280 + 10
    assert durations == [700] * 5
    with Image.open(io.BytesIO(data)) as image:
        assert image.info.get("loop") == 0


def test_gif_never_scales_up():
    _count, size, _durations = gif_frames(render_gif([png("white", (400, 300))], max_width=800))
    assert size[0] == 400


def test_gif_frame_count_is_capped():
    frames = [png((i % 256, 0, 0), (64, 48)) for i in range(MAX_FRAMES + 50)]
    count, _size, _durations = gif_frames(render_gif(frames))
    assert count == MAX_FRAMES


def test_gif_without_screenshots_is_a_placeholder():
    count, size, _durations = gif_frames(render_gif([]))
    assert count == 1 and size[0] <= 800


def test_gif_size_is_bounded_by_width_and_frame_count():
    # Distinct noise screenshots are the worst case for the encoder (no shared regions, no runs).
    frames = []
    for seed in range(10):
        noise = Image.effect_noise((1280, 720), 40 + seed).convert("RGB")
        buffer = io.BytesIO()
        noise.save(buffer, format="PNG", compress_level=1)
        frames.append(buffer.getvalue())
    data = render_gif(frames, max_width=800)
    count, (width, height), _durations = gif_frames(data)
    assert count == 10 and width == 800
    assert len(data) < count * width * height * 1.5  # at most ~1.5 bytes a pixel: 8-bit palette + LZW overhead


# -- script: generation ---------------------------------------------------------------------------


def nasty_steps() -> list[dict]:
    steps = [{"action": "goto", "url": "https://example.com/p?q=%22'\\{x}&r=\u00fc"}]
    for text in NASTY:
        steps += [
            {"action": "fill", "selector": f"input[name={text!r}]", "text": text},
            {"action": "expect_text", "text": text},
        ]
    steps += [
        {"action": "press", "key": "'"},
        {"action": "press", "key": "\\"},
        {"action": "click", "selector": "@button=" + NASTY[3]},
        {"action": "wait_for", "text": NASTY[5]},
    ]
    return steps


def test_script_embeds_nasty_values_as_exact_literals():
    steps = nasty_steps()
    source = render_script(steps=steps, options=OPTIONS)
    compile(source, "replay.py", "exec")
    constants = string_constants(source)
    for step in steps:
        for key in ("url", "selector", "text", "key"):
            if key in step and not step[key].startswith("@"):
                assert step[key] in constants, (key, step[key])
    # The label of a smart selector survives too (inside the candidate selectors).
    assert any(NASTY[3].replace('"', '\\"') in value for value in constants)
    # Injected code stays data: the only calls to a "system" would come from the strings.
    tree = ast.parse(source)
    called = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert "system" not in called and "__import__" not in called
    # Client values never appear outside string literals (no comment or docstring carries them).
    assert "pwned" not in "".join(line for line in source.splitlines() if line.lstrip().startswith("#"))


def test_script_carries_the_browser_options():
    source = render_script(
        steps=[{"action": "goto", "url": "https://example.com"}],
        options=BrowserOptions(
            headless=False, width=1024, height=768, step_timeout_ms=1234, navigation_timeout_ms=5678
        ),
        expected_status="failure",
    )
    namespace = {
        target.id: ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        for target in node.targets
    }
    assert namespace["HEADLESS"] is False
    assert namespace["WINDOW"] == {"width": 1024, "height": 768}
    assert namespace["STEP_TIMEOUT_MS"] == 1234
    assert namespace["NAVIGATION_TIMEOUT_MS"] == 5678
    assert namespace["EXPECTED_STATUS"] == "failure"
    assert "--window-size=1024,768" in namespace["LAUNCH_ARGS"]
    assert "--disable-background-networking" in namespace["LAUNCH_ARGS"]


def test_script_rejects_bad_input():
    with pytest.raises(StepValidationError):
        render_script(steps=[{"action": "goto", "url": "file:///etc/passwd"}], options=OPTIONS)
    with pytest.raises(ValueError, match="expected_status"):
        render_script(steps=[], options=OPTIONS, expected_status="maybe")


# -- script: run against the local site -------------------------------------------------------------


def run_script(source: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "replay.py"
    path.write_text(source, encoding="utf-8")
    # sys.executable is the .venv's python, which has playwright: the script's only dependency.
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
        check=False,
        env=script_environment(),
    )


@pytest.mark.browser
def test_script_from_a_run_exits_0_when_the_text_is_seen_and_1_when_not(local_site, tmp_path):
    steps = plan_steps(
        start_url=local_site.url("/"),
        search_input_input="desk lamp",
        search_input_action="click",
        expected_outcome="Results for desk lamp",
    )
    report = run_browser(steps=steps, options=OPTIONS)
    assert report.error == "" and report.expectation_met

    source = render_script(steps=report.replay_steps(), options=OPTIONS)
    assert "@search-box" not in source and "def locate" not in source  # concrete selectors from the history
    passed = run_script(source, tmp_path)
    assert passed.returncode == 0, passed.stderr
    assert "outcome: success" in passed.stdout

    absent = report.replay_steps()
    absent[-1] = {"action": "expect_text", "text": "Results for a sofa", "timeout_ms": 1_000}
    failed = run_script(render_script(steps=absent, options=OPTIONS), tmp_path)
    assert failed.returncode == 1
    assert "AssertionError" in failed.stderr

    # expected_status="failure" turns it around: the absent text is the expected outcome.
    inverted = run_script(render_script(steps=absent, options=OPTIONS, expected_status="failure"), tmp_path)
    assert inverted.returncode == 0, inverted.stderr


@pytest.mark.browser
def test_script_with_smart_selectors_resolves_them_itself(local_site, tmp_path):
    steps = plan_steps(
        start_url=local_site.url("/catalogue"),
        search_input_input="oak table",
        search_input_action="Find",
        expected_outcome="Results for oak table",
    )
    source = render_script(steps=steps, options=OPTIONS)  # planned steps, never run
    assert "def locate" in source
    result = run_script(source, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.browser
def test_script_types_nasty_text_exactly(local_site, tmp_path):
    typed = 'it\'s "quoted" \'\'\'triple\'\'\' """triple""" back\\slash {braces} %s Ünïcødé 漢字 🚀'
    steps = [
        {"action": "goto", "url": local_site.url("/")},
        {"action": "fill", "selector": "input[name=q]", "text": typed},
        {"action": "press", "selector": "input[name=q]", "key": "Enter"},
        {"action": "expect_text", "text": f"Results for {typed}"},
    ]
    report = run_browser(steps=steps, options=OPTIONS)
    assert report.expectation_met, report.history[-1].error
    result = run_script(render_script(steps=report.replay_steps(), options=OPTIONS), tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.browser
def test_script_fails_when_a_step_cannot_run(local_site, tmp_path):
    steps = [
        {"action": "goto", "url": local_site.url("/")},
        {"action": "click", "selector": "#does-not-exist", "timeout_ms": 1_000},
        {"action": "expect_text", "text": "Gatehouse"},
    ]
    result = run_script(render_script(steps=steps, options=OPTIONS), tmp_path)
    assert result.returncode != 0
    assert "Timeout" in result.stderr


# -- render_artifacts / history_document (pure: no browser, no database) ----------------------------


def finished_report(*, frames: list[bytes]) -> RunReport:
    """A report as run_browser leaves it: the planned smart selector resolved in the page, the last step failed."""
    steps = [
        {"action": "goto", "url": "https://shop.example/"},
        {"action": "fill", "selector": "@search-box", "text": "Ünïcødé lamp"},
        {"action": "expect_text", "text": "Results for Ünïcødé lamp"},
    ]
    resolved = "role=searchbox >> visible=true >> nth=0"
    history = [
        StepRecord(index=0, action="goto", args={"url": steps[0]["url"]}, status="ok", duration_ms=120),
        StepRecord(
            index=1,
            action="fill",
            args={"selector": resolved, "text": steps[1]["text"], "planned_selector": "@search-box"},
            status="ok",
            duration_ms=40,
        ),
        StepRecord(index=2, action="expect_text", args={"text": steps[2]["text"]}, status="failed", error="not found"),
    ]
    return RunReport(steps=steps, history=history, frames=frames, error="")


def test_artifacts_are_the_gif_the_replay_and_the_history_in_that_order():
    report = finished_report(frames=[png("white", (1000, 500)), png("red", (1000, 500))])
    options = BrowserOptions(headless=False, width=1000, height=500, step_timeout_ms=4321)
    artifacts = render_artifacts(
        task_id=7, run_number=3, report=report, options=options, expected_status="failure", gif_max_width=400
    )

    assert list(artifacts.files) == ["gif", "script", "history"]
    assert artifacts.warnings == []
    count, size, _durations = gif_frames(artifacts.files["gif"])
    assert count == len(report.frames) and size[0] == 400  # gif_max_width is passed on

    source = artifacts.files["script"].decode()
    compile(source, "replay.py", "exec")
    constants = string_constants(source)
    # The replay is made from the history (resolved selectors), with the run's options and expectation.
    assert "role=searchbox >> visible=true >> nth=0" in constants
    assert "@search-box" not in source and "def locate" not in source
    assert "EXPECTED_STATUS = 'failure'" in source and "STEP_TIMEOUT_MS = 4321" in source
    assert source == render_script(steps=report.replay_steps(), options=options, expected_status="failure")

    history = json.loads(artifacts.files["history"].decode())
    records = [record.to_dict() for record in report.history]
    assert history == {"task_id": 7, "run": 3, "steps": report.steps, "history": records, "error": ""}
    assert history["history"][1]["args"]["planned_selector"] == "@search-box"


def test_artifacts_without_screenshots_warn_that_the_gif_is_a_placeholder():
    report = finished_report(frames=[])
    report.error = "Could not start Chromium: no such file"
    artifacts = render_artifacts(task_id=1, run_number=1, report=report, options=OPTIONS, expected_status="success")
    assert artifacts.warnings == ["The browser took no screenshot; the GIF is a placeholder."]
    count, size, _durations = gif_frames(artifacts.files["gif"])
    assert count == 1 and size[0] <= 800
    assert json.loads(artifacts.files["history"])["error"] == report.error
    with pytest.raises(ValueError, match="expected_status"):
        render_artifacts(task_id=1, run_number=1, report=report, options=OPTIONS, expected_status="maybe")


def test_history_document_is_indented_utf8_json_in_a_fixed_key_order():
    steps = [{"action": "expect_text", "text": "漢字 🚀"}]
    history = [{"index": 0, "action": "expect_text", "args": {"text": "漢字 🚀"}, "status": "ok"}]
    data = history_document(task_id=12, run_number=2, steps=steps, history=history, error='Step 1 failed: "x"')

    text = data.decode("utf-8")
    assert "漢字 🚀" in text  # non-ASCII written as is, not as \u escapes
    assert list(json.loads(text).items()) == [
        ("task_id", 12),
        ("run", 2),
        ("steps", steps),
        ("history", history),
        ("error", 'Step 1 failed: "x"'),
    ]
    assert text.splitlines()[1] == '  "task_id": 12,'  # indent=2
