"""Chromium's sandbox and what the browser can see of the worker: the flags, the environment it is
launched with, the error and the warnings when the sandbox cannot start, and the sandbox really on
for a non-root worker (as Chromium itself and /proc report it)."""

import ast
import json
import os
import pwd
import re
import secrets
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tasks.runner import BrowserOptions, render_script, run_browser, sandbox_warning
from tasks.runner.chromium import NO_SANDBOX_ARG, browser_environment, launch_args, sandbox_failure_message
from tasks.tests.factories import FAST, chromium_descendants
from tasks.tests.worker import descendants

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("sandbox_probe.py")
SECCOMP_LOADER = Path(__file__).with_name("seccomp_loader.py")
SECCOMP_PROFILE = ROOT / "docker" / "chromium-seccomp.json"
SANDBOX_USER = "gatehouse-sandbox"  # a system user the tests create when they run as root
WORKER_ENVIRONMENT = {
    "SECRET_KEY": "django-secret-" + "x" * 40,
    "DATABASE_URL": "postgres://gatehouse:hunter2@db:5432/gatehouse",
    "CLOUDINARY_URL": "cloudinary://123:api-secret@demo",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/home/worker",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "DISPLAY": ":99",
    "XAUTHORITY": "/home/worker/.Xauthority",
}


def cannot_run(reason: str):
    """This machine cannot run the test: a skip, but a failure where CI demands every service-marked test."""
    if os.environ.get("GATEHOUSE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (GATEHOUSE_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
    pytest.skip(reason)


# FLAGS AND THE REPLAY SCRIPT (no browser) ------------------------------------------------------------------


def test_no_sandbox_is_in_the_launch_flags_only_when_asked():
    assert NO_SANDBOX_ARG == "--no-sandbox"
    assert NO_SANDBOX_ARG not in launch_args(800, 600)
    assert NO_SANDBOX_ARG not in launch_args(800, 600, no_sandbox=False)
    assert launch_args(800, 600, no_sandbox=True).count(NO_SANDBOX_ARG) == 1
    assert "--window-size=800,600" in launch_args(800, 600, no_sandbox=True)


def script_namespace(source: str) -> dict:
    """The replay script's module namespace (its constants and helpers), without running main()."""
    namespace: dict = {"__name__": "replay"}
    exec(compile(source, "replay.py", "exec"), namespace)  # noqa: S102 -- our own generated script
    return namespace


def test_the_replay_script_never_carries_no_sandbox(monkeypatch):
    # Even from a worker that runs Chromium without its sandbox: the replaying machine decides.
    options = BrowserOptions(width=640, height=480, no_sandbox=True)
    source = render_script(steps=[{"action": "goto", "url": "https://example.com/"}], options=options)
    assert NO_SANDBOX_ARG not in source
    namespace = script_namespace(source)
    assert namespace["LAUNCH_ARGS"] == launch_args(640, 480)
    launch = next(
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "launch"
    )
    keywords = {keyword.arg: ast.unparse(keyword.value) for keyword in launch.keywords}
    # Without chromium_sandbox=True, Playwright itself would add --no-sandbox.
    assert keywords["chromium_sandbox"] == "chromium_sandbox()" and keywords["args"] == "LAUNCH_ARGS"

    monkeypatch.delenv("CHROMIUM_NO_SANDBOX", raising=False)
    assert namespace["chromium_sandbox"]() is True
    for value, sandboxed in [("true", False), ("TRUE", False), ("1", False), ("false", True), ("", True)]:
        monkeypatch.setenv("CHROMIUM_NO_SANDBOX", value)
        assert namespace["chromium_sandbox"]() is sandboxed, value


# ENVIRONMENT, ERROR AND WARNINGS (no browser) ---------------------------------------------------------------


def test_chromium_gets_only_the_environment_it_needs():
    headless = browser_environment(headless=True, source=WORKER_ENVIRONMENT)
    assert headless == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/home/worker",
        "TMPDIR": tempfile.gettempdir(),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
    }
    headed = browser_environment(headless=False, source=WORKER_ENVIRONMENT)
    assert headed == {**headless, "DISPLAY": ":99", "XAUTHORITY": "/home/worker/.Xauthority"}
    # Nothing at all to inherit: still a PATH, a HOME and a temporary directory to start with.
    assert set(browser_environment(headless=True, source={})) == {"PATH", "HOME", "TMPDIR"}


def test_a_sandbox_that_cannot_start_is_said_plainly():
    playwright_says = "BrowserType.launch: Target page, context or browser has been closed\nChromium sandboxing failed!"
    as_root = sandbox_failure_message(playwright_says, euid=0)
    assert "sandbox cannot start" in as_root and "runs as root" in as_root
    assert "non-root user" in as_root and "CHROMIUM_NO_SANDBOX=true" in as_root
    as_user = sandbox_failure_message("[ERROR] No usable sandbox! ...", euid=1000)
    assert "user namespaces" in as_user and "CHROMIUM_NO_SANDBOX=true" in as_user
    assert sandbox_failure_message("Executable doesn't exist at /nowhere/chromium", euid=0) is None


def test_the_start_up_warning_says_when_the_sandbox_is_off_or_cannot_start():
    assert "CHROMIUM_NO_SANDBOX=true" in sandbox_warning(no_sandbox=True, euid=1000)
    assert "CHROMIUM_NO_SANDBOX=true" in sandbox_warning(no_sandbox=True, euid=0)
    assert "runs as root" in sandbox_warning(no_sandbox=False, euid=0)
    assert sandbox_warning(no_sandbox=False, euid=1000) is None


# A REAL CHROMIUM ------------------------------------------------------------------------------------------


def environment_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as environ:
        entries = environ.read().split(b"\0")
    return dict(entry.decode(errors="replace").split("=", 1) for entry in entries if b"=" in entry)


@pytest.mark.browser
def test_chromium_does_not_inherit_the_workers_secrets(local_site, monkeypatch):
    secret = secrets.token_urlsafe(24)
    monkeypatch.setenv("GATEHOUSE_TEST_SECRET_KEY", secret)
    monkeypatch.setenv("DATABASE_URL", f"postgres://gatehouse:{secret}@db:5432/gatehouse")
    seen: dict[int, dict[str, str]] = {}
    driver_saw_it: list[bool] = []

    def inspect(done: int, _total: int) -> None:
        if done != 1:
            return
        chromium = chromium_descendants()
        for pid in chromium:
            try:
                seen[pid] = environment_of(pid)
            except OSError:
                continue  # a process that just ended
        # Control: Playwright's driver (not Chromium) has the worker's environment, the secret included.
        others = [pid for pid, _ in descendants(os.getpid()) if pid not in chromium]
        driver_saw_it.append(any(secret in environment_of(pid).get("GATEHOUSE_TEST_SECRET_KEY", "") for pid in others))

    steps = [
        {"action": "goto", "url": local_site.url("/")},
        {"action": "expect_text", "text": "never on the page", "timeout_ms": 1_000},
    ]
    report = run_browser(steps=steps, options=FAST, on_step=inspect)

    assert report.error == ""
    assert driver_saw_it == [True]
    assert len(seen) >= 3, seen  # the browser, its zygotes, a renderer at least
    for pid, environment in seen.items():
        assert not any(secret in value for value in environment.values()), (pid, sorted(environment))
        assert "GATEHOUSE_TEST_SECRET_KEY" not in environment and "DATABASE_URL" not in environment
    # Of the worker's environment, only what browser_environment passes arrives. (Chromium's launcher
    # adds its own: Debian's wrapper sets CHROME_*, its public GOOGLE_API_KEY, and the shell's PWD.)
    passed = set(browser_environment(headless=True))
    for pid, environment in seen.items():
        inherited = {
            name
            for name, value in environment.items()
            if name not in passed and name != "PWD" and os.environ.get(name) == value
        }
        assert not inherited, (pid, sorted(inherited))
    assert any(environment.get("PATH") == os.environ["PATH"] for environment in seen.values())


@pytest.mark.browser
def test_a_root_worker_without_chromium_no_sandbox_fails_the_run_and_says_why(local_site):
    if os.geteuid() != 0:
        pytest.skip("checks the root case; as any other user the sandbox starts (test_the_sandbox_is_on...)")
    report = run_browser(
        steps=[{"action": "goto", "url": local_site.url("/")}],
        options=BrowserOptions(no_sandbox=False, navigation_timeout_ms=10_000),
    )
    assert report.error.startswith("Could not start Chromium: its sandbox cannot start (this worker runs as root")
    assert "non-root user" in report.error and "CHROMIUM_NO_SANDBOX=true" in report.error
    assert [record.status for record in report.history] == ["skipped"]


# THE SANDBOX ON, AS A NON-ROOT USER ------------------------------------------------------------------------


def sandbox_user() -> pwd.struct_passwd:
    """The dedicated system user (created when missing): no home, no login shell, no password."""
    try:
        return pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or shutil.which("useradd", path="/usr/sbin:/sbin")
    if useradd is None:
        cannot_run("running the sandbox probe as a non-root user needs useradd (package passwd)")
    command = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    subprocess.run([*command, "--shell", "/usr/sbin/nologin", SANDBOX_USER], check=True, capture_output=True)
    return pwd.getpwnam(SANDBOX_USER)


def as_user(user: str | None, command: list[str]) -> list[str]:
    """``command`` run as ``user`` (None: as this process), in the environment the caller gives it (-m)."""
    if user is None:
        return command
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        cannot_run("running the sandbox probe as a non-root user needs runuser (package util-linux)")
    return [runuser, "-m", "-u", user, "--", *command]


def python_for(user: str | None) -> str:
    """An interpreter of this Python version that the user can run: this one, or the system's when this
    one lives where the user cannot go (a pyenv build under /root)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, os.path.realpath(sys.executable), f"/usr/bin/python{version}"]
    for candidate in dict.fromkeys(candidates):
        probe = as_user(user, [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        try:
            answer = subprocess.run(probe, capture_output=True, text=True, timeout=30, env={"PATH": os.defpath})
        except OSError:
            continue
        if answer.returncode == 0 and answer.stdout.strip() == version:
            return candidate
    cannot_run(f"no Python {version} that {user or 'this user'} may run (tried {candidates})")


def run_probe(url: str, *, seccomp: list[str] = ()) -> dict:
    """Run sandbox_probe.py as a non-root user, with the runner package copied where that user can read it;
    under a seccomp profile when ``seccomp`` gives seccomp_loader.py's options and profile."""
    user = sandbox_user().pw_name if os.geteuid() == 0 else None
    workdir = Path(tempfile.mkdtemp(prefix="gatehouse-sandbox-"))
    try:
        package = workdir / "path" / "tasks"
        shutil.copytree(ROOT / "tasks" / "runner", package / "runner", ignore=shutil.ignore_patterns("__pycache__"))
        (package / "__init__.py").write_text("")
        for script in (PROBE, SECCOMP_LOADER, *([SECCOMP_PROFILE] if seccomp else [])):
            shutil.copy(script, workdir / script.name)
        if user is not None:
            subprocess.run(["chown", "-R", f"{user}:", str(workdir)], check=True)
        python = python_for(user)
        environment = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
            # Playwright and Pillow from this virtualenv: its site-packages are readable by anyone.
            "PYTHONPATH": os.pathsep.join([str(workdir / "path"), *site.getsitepackages()]),
            **({"CHROMIUM_PATH": os.environ["CHROMIUM_PATH"]} if os.environ.get("CHROMIUM_PATH") else {}),
        }
        loader = [python, str(workdir / SECCOMP_LOADER.name), *seccomp, str(workdir / SECCOMP_PROFILE.name)]
        command = as_user(user, [*(loader if seccomp else []), python, str(workdir / PROBE.name), url])
        result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=environment, cwd=workdir)
        assert result.returncode == 0, f"probe failed ({command}):\n{result.stderr[-4000:]}"
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.browser
def test_the_sandbox_is_on_for_a_non_root_worker(local_site):
    probe = run_probe(local_site.url("/"))

    assert probe["euid"] != 0
    assert probe["error"] == ""
    # Chromium's own verdict, in a Chromium started with the runner's flags and environment.
    page = probe["sandbox_page"]
    assert "You are adequately sandboxed." in page, page
    for row in ("Layer 1 Sandbox\tNamespace", "PID namespaces\tYes", "Network namespaces\tYes"):
        assert row in page, (row, page)
    assert re.search(r"^Seccomp-BPF sandbox\tYes$", page, re.MULTILINE), page

    # The processes of a real run_browser: each renderer under seccomp-BPF, in a user and PID
    # namespace of its own; none with the probe's secret in its environment.
    processes = probe["processes"]
    assert not [p for p in processes if "unreadable" in p], processes
    browser = [p for p in processes if p["type"] == "browser"]
    renderers = [p for p in processes if p["type"] == "renderer"]
    assert len(browser) == 1 and renderers, processes
    for renderer in renderers:
        assert renderer["seccomp"] == "2", renderer
        assert renderer["user_ns"] != browser[0]["user_ns"], renderer
        assert renderer["pid_ns"] != browser[0]["pid_ns"], renderer
    assert browser[0]["seccomp"] == "0"
    assert not [p for p in processes if p["secret_in_environment"]], processes


# DOCKER: THE SECCOMP PROFILE THE WORKER CONTAINER RUNS UNDER ------------------------------------------------


def libseccomp_missing() -> bool:
    import ctypes.util

    return ctypes.util.find_library("seccomp") is None


@pytest.mark.browser
def test_the_docker_seccomp_profile_lets_the_sandbox_start(local_site):
    if libseccomp_missing():
        cannot_run("checking docker/chromium-seccomp.json needs libseccomp (package libseccomp2)")
    probe = run_probe(local_site.url("/"), seccomp=[])
    assert probe["error"] == "" and "You are adequately sandboxed." in probe["sandbox_page"], probe
    renderers = [process for process in probe["processes"] if process["type"] == "renderer"]
    assert renderers and all(renderer["seccomp"] == "2" for renderer in renderers), probe["processes"]


@pytest.mark.browser
def test_dockers_namespace_rules_would_stop_the_sandbox_and_the_run_says_why(local_site):
    # What the profile is for: Docker's default refuses the namespaces Chromium's sandbox is made of.
    if libseccomp_missing():
        cannot_run("checking docker/chromium-seccomp.json needs libseccomp (package libseccomp2)")
    probe = run_probe(local_site.url("/"), seccomp=["--docker-namespace-rules"])
    assert probe["sandbox_page"].startswith("launch failed"), probe["sandbox_page"]
    assert probe["error"].startswith("Could not start Chromium: its sandbox cannot start (this system"), probe
    assert "docker/chromium-seccomp.json" in probe["error"] and "CHROMIUM_NO_SANDBOX=true" in probe["error"]


def test_the_worker_container_runs_under_the_profile_as_a_non_root_user():
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    worker = compose["services"]["worker"]
    assert "seccomp=chromium-seccomp.json" in worker["security_opt"]
    assert "no-new-privileges:true" in worker["security_opt"]
    assert "CHROMIUM_NO_SANDBOX" not in worker["environment"]
    profile = json.loads(SECCOMP_PROFILE.read_text())
    refused = {name for rule in profile["syscalls"] for name in rule["names"]}
    # Chromium's sandbox is made of these: refusing one would stop it (the test above shows which).
    assert not refused & {"clone", "clone3", "unshare", "chroot", "seccomp", "prctl"}
    assert {"mount", "ptrace", "keyctl", "bpf", "kexec_load", "init_module"} <= refused
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^USER gatehouse$", dockerfile, re.MULTILINE)


def test_the_worker_container_reaches_only_postgres_redis_and_the_outside():
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    services, networks = compose["services"], compose["networks"]

    def members(network: str) -> set[str]:
        return {name for name, service in services.items() if network in service.get("networks", [])}

    worker = services["worker"]
    internal = [network for network in worker["networks"] if networks[network] and networks[network].get("internal")]
    outbound = [network for network in worker["networks"] if network not in internal]
    assert len(internal) == 1 and members(internal[0]) == {"worker", "beat", "postgres", "redis"}
    assert len(outbound) == 1 and members(outbound[0]) == {"worker"}
    assert not set(worker["networks"]) & set(services["web"]["networks"]), "the browser must not reach the web"
    for service in ("postgres", "redis"):
        assert all(networks[network]["internal"] for network in services[service]["networks"]), service
    # Limits, and no web secret: its own key (required) and no JWT signing key.
    assert {"mem_limit", "cpus", "pids_limit"} <= set(worker)
    assert worker["environment"]["SECRET_KEY"].startswith("${WORKER_SECRET_KEY:?")
    assert worker["environment"]["JWT_SIGNING_KEY"] == ""


# THE WORKER'S START-UP WARNING -----------------------------------------------------------------------------

NO_SANDBOX_WARNING = "CHROMIUM_NO_SANDBOX=true: Chromium runs without its sandbox"
ROOT_WARNING = "This worker runs as root: Chromium's sandbox cannot start as root"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_warns_once_at_start(start_worker):
    # Two pool processes, one warning: it comes from the worker's main process.
    worker = start_worker(concurrency=2, CHROMIUM_NO_SANDBOX="true")
    assert worker.count(NO_SANDBOX_WARNING) == 1, worker.log()[-3000:]
    assert worker.count(ROOT_WARNING) == 0

    sandboxed = start_worker(concurrency=1, CHROMIUM_NO_SANDBOX="false")
    assert sandboxed.count(NO_SANDBOX_WARNING) == 0
    assert sandboxed.count(ROOT_WARNING) == (1 if os.geteuid() == 0 else 0), sandboxed.log()[-3000:]
