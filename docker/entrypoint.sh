#!/bin/sh
# Container entrypoint for every role: wait until the database accepts connections, then exec the
# command (gunicorn, celery worker/beat, manage.py migrate), which so becomes PID 1's child of
# `init` (compose.yml: init: true) and receives SIGTERM directly for a graceful shutdown.
#   DB_WAIT_SECONDS (default 60): how long to wait before giving up with an error.
set -eu

python - <<'PYTHON'
import os
import sys
import time

import django

django.setup()
from django.db import connection
from django.db.utils import OperationalError

deadline = time.monotonic() + float(os.environ.get("DB_WAIT_SECONDS", "60"))
while True:
    try:
        connection.ensure_connection()
        break
    except OperationalError as error:
        if time.monotonic() > deadline:
            print(f"entrypoint: database still unavailable, giving up: {error}", file=sys.stderr)
            sys.exit(1)
        print("entrypoint: waiting for the database...", file=sys.stderr)
        time.sleep(1)
    finally:
        connection.close()
PYTHON

exec "$@"
