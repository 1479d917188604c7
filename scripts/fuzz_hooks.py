"""schemathesis hooks of scripts/fuzz: a fresh JWT for every request of the session-ending run.

Logging out, changing the password or deleting a session ends the caller's session, so each of
these requests logs in first and sends a token of its own (FUZZ_BASE_URL, FUZZ_USERNAME and
FUZZ_PASSWORD come from scripts/fuzz).
"""

import json
import os
import urllib.request

import schemathesis


def _fresh_access_token() -> str:
    body = json.dumps({"username": os.environ["FUZZ_USERNAME"], "password": os.environ["FUZZ_PASSWORD"]}).encode()
    request = urllib.request.Request(  # noqa: S310 (the fuzzed server's http URL)
        os.environ["FUZZ_BASE_URL"] + "/api/v1/auth/login",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)["access_token"]


# refresh_interval=None: no caching, a login per request; retry_on=[]: a 401 is an answer to check.
@schemathesis.auth(refresh_interval=None, retry_on=[])
class FreshJWT:
    def get(self, case, context):
        return _fresh_access_token()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
