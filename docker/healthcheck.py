#!/usr/bin/env python3
"""Container health probe: GET a path on the local web server, exit 0 on 200, 1 otherwise.

    python docker/healthcheck.py /health/live     # liveness (the Dockerfile's HEALTHCHECK)
    python docker/healthcheck.py /health          # readiness: database, cache and broker

Stdlib only and no Django import, so a probe costs milliseconds. The Host header is the first
entry of ALLOWED_HOSTS, so the probe passes Django's host check whatever the deployment's name;
health paths are exempt from the HTTPS redirect (config/settings/production.py).
"""

import http.client
import os
import sys


def probe_host() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")  # ".example.com" allows example.com and its subdomains
        if host and host != "*":
            return host
    return "localhost"


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/health/live"
    port = int(os.environ.get("HEALTHCHECK_PORT") or os.environ.get("PORT") or 8000)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=float(os.environ.get("HEALTHCHECK_TIMEOUT", 4)))
    try:
        connection.request("GET", path, headers={"Host": probe_host(), "User-Agent": "gatehouse-healthcheck"})
        response = connection.getresponse()
        body = response.read(500).decode("utf-8", "replace")
    except OSError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if response.status != 200:
        print(f"{path}: HTTP {response.status} {body}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
