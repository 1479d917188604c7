"""The venv the generated-client test runs openapi-python-client and its client in (the `client` marker).

Made once under var/test-client-venv and reused while the pins match; never the project's venv.
"""

import functools
import subprocess
import sys

from django.conf import settings

# Pinned here, not in requirements/: the generator and the generated client's runtime live in their
# own venv. python-dateutil is what the generated models parse dates with.
GENERATOR = "openapi-python-client==0.29.1"
CLIENT_RUNTIME = ["python-dateutil==2.9.0.post0"]


def venv_dir():
    return settings.BASE_DIR / "var" / "test-client-venv"


@functools.cache
def venv_python():
    """The venv's python, after making the venv if it is missing or made with other pins."""
    python = venv_dir() / "bin" / "python"
    stamp = venv_dir() / "pins.txt"
    pins = "\n".join([GENERATOR, *CLIENT_RUNTIME])
    if python.exists() and stamp.exists() and stamp.read_text() == pins:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv_dir())], check=True, capture_output=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", GENERATOR, *CLIENT_RUNTIME],
        check=True,
        capture_output=True,
        timeout=300,
    )
    stamp.write_text(pins)
    return python


def problem():
    """Why the venv cannot be made (no index to install from, no venv module), or None."""
    try:
        venv_python()
    except (subprocess.SubprocessError, OSError) as error:
        detail = getattr(error, "stderr", b"") or b""
        return f"cannot install {GENERATOR} into {venv_dir()}: {error} {detail.decode(errors='replace')[-300:]}"
    return None
