"""A local stand-in for Cloudinary, for tests: the part of its Upload API, Admin API and delivery the project uses.

There is no internet here, and what is outside our control across the network is replaced by
a server that speaks its protocol, not by patching: the real `cloudinary` SDK (and
django-cloudinary-storage) talk to this server because the configuration says so::

    CLOUDINARY_URL=cloudinary://KEY:SECRET@CLOUD?upload_prefix=http://127.0.0.1:PORT&secure=false&cname=127.0.0.1:PORT

`upload_prefix` sends the Upload and Admin API calls here; `secure=false` + `cname` make the
delivery URLs `http://127.0.0.1:PORT/CLOUD/<resource_type>/upload/v<version>/<public_id>`.

What it speaks is in results/tests/cloudinary_protocol.py.

Run it by hand (docs/storage.md): `python -m results.tests.cloudinary_server --port 8700`.

Switches, set from the test: `fail(...)` (a 500, N times or until `recover()`, optionally after
storing the upload), `slow(seconds)` (answer late, so a client timeout fires), `recover()`.
Every API call is recorded in `calls`; the stored assets are in `assets`.
"""

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from urllib.parse import urlencode

from results.tests.cloudinary_http import CloudinaryRequestHandler
from results.tests.cloudinary_protocol import (
    API_ACTIONS,
    STALE_AFTER,
    UNSIGNED_PARAMS,
    Asset,
    Call,
    expected_signature,
    sniff_image_format,
    string_to_sign,
)


@dataclass
class _Failure:
    actions: tuple[str, ...]
    times: int | None  # None: until recover()
    status: int
    after_store: bool
    per_asset: bool
    seen: dict[str, int] = field(default_factory=dict)

    def applies(self, action: str, public_id: str) -> bool:
        if action not in self.actions:
            return False
        if self.times is None:
            return True
        key = public_id if self.per_asset else ""
        count = self.seen.get(key, 0)
        if count >= self.times:
            return False
        self.seen[key] = count + 1
        return True


class CloudinaryServer:
    """A threaded HTTP server on 127.0.0.1 speaking the Cloudinary subset described in the module docstring."""

    def __init__(
        self,
        *,
        cloud_name: str = "gatehouse-test",
        api_key: str = "123456789012345",
        api_secret: str = "",
        port: int = 0,
    ):
        self.cloud_name = cloud_name
        self.requested_port = port
        self.api_key = api_key
        self.api_secret = api_secret or secrets.token_urlsafe(20)
        self.assets: dict[tuple[str, str], Asset] = {}
        self.calls: list[Call] = []
        self._failure: _Failure | None = None
        self._delay = 0.0
        self._delay_actions: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle --------------------------------------------------------------

    def start(self) -> "CloudinaryServer":
        handler = type("Handler", (CloudinaryRequestHandler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.requested_port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="cloudinary-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self.recover()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cloudinary_url(self, *, api_secret: str | None = None, **extra: str) -> str:
        """A CLOUDINARY_URL that points the SDK here: API calls through upload_prefix, delivery through cname."""
        query = {"upload_prefix": self.base_url, "secure": "false", "cname": f"127.0.0.1:{self.port}", **extra}
        secret = self.api_secret if api_secret is None else api_secret
        return f"cloudinary://{self.api_key}:{secret}@{self.cloud_name}?{urlencode(query)}"

    # switches ------------------------------------------------------------------

    def fail(
        self,
        *,
        times: int | None = None,
        actions: tuple[str, ...] = API_ACTIONS,
        status: int = 500,
        after_store: bool = False,
        per_asset: bool = False,
    ) -> None:
        """Answer `status` to the next `times` calls of `actions` (per public id with `per_asset`), or until recover().

        `after_store`: an upload is stored first and then answered with the error (a response lost
        on the way back), so a client that retries uploads the same asset again.
        """
        with self._lock:
            self._failure = _Failure(tuple(actions), times, status, after_store, per_asset)

    def slow(self, seconds: float, *, actions: tuple[str, ...] = API_ACTIONS) -> None:
        """Answer calls of `actions` only after `seconds` (the work itself is done: a late answer, not a lost one)."""
        with self._lock:
            self._delay, self._delay_actions = seconds, tuple(actions)

    def recover(self) -> None:
        with self._lock:
            self._failure = None
            self._delay, self._delay_actions = 0.0, ()

    # what happened ---------------------------------------------------------------

    def asset(self, resource_type: str, public_id: str) -> Asset | None:
        return self.assets.get((resource_type, public_id))

    def calls_of(self, action: str) -> list[Call]:
        return [call for call in self.calls if call.action == action]

    # handling ------------------------------------------------------------------

    def _should_fail(self, action: str, public_id: str) -> _Failure | None:
        with self._lock:
            failure = self._failure
            return failure if failure is not None and failure.applies(action, public_id) else None

    def _delay_for(self, action: str) -> float:
        with self._lock:
            return self._delay if action in self._delay_actions else 0.0

    def _check_signature(self, call: Call, params: dict[str, str]) -> tuple[int, str] | None:
        """None when the request is signed with our secret and fresh, else (status, Cloudinary's message)."""
        if params.get("api_key") != self.api_key:
            return 401, f"Invalid api_key {params.get('api_key')}"
        signature = params.get("signature", "")
        to_sign = {key: value for key, value in params.items() if key not in UNSIGNED_PARAMS}
        algorithm = "sha256" if len(signature) == 64 else "sha1"
        expected = expected_signature(to_sign, self.api_secret, algorithm=algorithm)
        call.signature_ok = hmac.compare_digest(signature, expected)
        if not call.signature_ok:
            return 401, f"Invalid Signature {signature}. String to sign - '{string_to_sign(to_sign)}'."
        try:
            timestamp = int(params.get("timestamp", ""))
        except ValueError:
            return 400, "Missing required parameter - timestamp"
        if timestamp < time.time() - STALE_AFTER:
            return 401, f"Stale request - reported time is {timestamp} which is more than 1 hour ago"
        return None

    def handle_api(self, action: str, resource_type: str, params: dict[str, str], file: bytes | None, filename: str):
        call = Call(action=action, resource_type=resource_type, params=dict(params))
        self.calls.append(call)
        call.signature_ok = False
        problem = self._check_signature(call, params)
        if problem:
            call.status = problem[0]
            return problem[0], {"error": {"message": problem[1]}}
        if action == "upload":
            return self._upload(call, params, file, filename)
        return self._destroy(call, params)

    def _upload(self, call: Call, params: dict[str, str], file: bytes | None, filename: str):
        resource_type = call.resource_type
        if file is None:
            call.status = 400
            return 400, {"error": {"message": "Missing required parameter - file"}}
        public_id = params.get("public_id") or secrets.token_hex(10)
        fmt = ""
        if resource_type == "image":
            fmt = (filename.rsplit(".", 1)[-1] if "." in filename else "") or sniff_image_format(file)
        failure = self._should_fail("upload", public_id)
        if failure and not failure.after_store:
            call.status = failure.status
            return failure.status, {"error": {"message": "General Error (test switch)"}}
        key = (resource_type, public_id)
        existing = self.assets.get(key)
        overwrite = params.get("overwrite", "1").lower() not in ("0", "false")
        if existing is not None and not overwrite:
            body = self._describe(existing)
            body["existing"] = True
        else:
            asset = Asset(
                public_id=public_id,
                resource_type=resource_type,
                data=file,
                format=fmt,
                version=max(int(time.time()), (existing.version + 1) if existing else 0),
                created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                tags=[tag for tag in params.get("tags", "").split(",") if tag],
            )
            with self._lock:
                self.assets[key] = asset
            body = self._describe(asset)
        if failure:  # after_store: the asset is there, the answer is lost
            call.status = failure.status
            return failure.status, {"error": {"message": "General Error (test switch, after storing)"}}
        call.status = 200
        return 200, body

    def _destroy(self, call: Call, params: dict[str, str]):
        public_id = params.get("public_id", "")
        failure = self._should_fail("destroy", public_id)
        if failure:
            call.status = failure.status
            return failure.status, {"error": {"message": "General Error (test switch)"}}
        with self._lock:
            gone = self.assets.pop((call.resource_type, public_id), None)
        call.status = 200
        return 200, {"result": "ok" if gone else "not found"}

    def handle_resources(self, resource_type: str, query: dict[str, str], authorization: str):
        call = Call(action="resources", resource_type=resource_type, params=dict(query))
        self.calls.append(call)
        expected = "Basic " + base64.b64encode(f"{self.api_key}:{self.api_secret}".encode()).decode()
        if not hmac.compare_digest(authorization or "", expected):
            call.status = 401
            return 401, {"error": {"message": "Invalid api_key or api_secret"}}
        if self._should_fail("resources", ""):
            call.status = 500
            return 500, {"error": {"message": "General Error (test switch)"}}
        prefix = query.get("prefix", "")
        max_results = min(int(query.get("max_results", 10)), 500)
        start = int(query.get("next_cursor") or 0)
        with self._lock:
            matching = [a for a in self.assets.values() if a.resource_type == resource_type]
        matching = sorted((a for a in matching if a.public_id.startswith(prefix)), key=lambda a: a.public_id)
        page = matching[start : start + max_results]
        body = {"resources": [self._describe(a) for a in page]}
        if start + max_results < len(matching):
            body["next_cursor"] = str(start + max_results)
        call.status = 200
        return 200, body

    def find_delivered(self, path: str) -> Asset | None:
        """The asset a delivery path names: [/<cloud>]/<resource_type>/upload/[v<n>/]<public_id>[.<format>]."""
        match = re.fullmatch(rf"(?:/{re.escape(self.cloud_name)})?/(image|raw|video)/upload/(?:v\d+/)?(.+)", path)
        if not match:
            return None
        resource_type, rest = match.groups()
        with self._lock:
            asset = self.assets.get((resource_type, rest))
            if asset is None and resource_type != "raw" and "." in rest:
                public_id, fmt = rest.rsplit(".", 1)
                asset = self.assets.get((resource_type, public_id))
                if asset is not None and asset.format != fmt:
                    asset = None  # a conversion this server does not do
        return asset

    def _describe(self, asset: Asset) -> dict:
        path = f"{asset.resource_type}/upload/v{asset.version}/{asset.public_id}"
        if asset.format:
            path += f".{asset.format}"
        url = f"http://127.0.0.1:{self.port}/{self.cloud_name}/{path}"
        body = {
            "asset_id": hashlib.md5(f"{asset.resource_type}/{asset.public_id}".encode()).hexdigest(),  # noqa: S324
            "public_id": asset.public_id,
            "version": asset.version,
            "resource_type": asset.resource_type,
            "type": "upload",
            "created_at": asset.created_at,
            "bytes": len(asset.data),
            "tags": asset.tags,
            "etag": hashlib.md5(asset.data).hexdigest(),  # noqa: S324 (an ETag, not security)
            "url": url,
            "secure_url": url,
        }
        if asset.format:
            body["format"] = asset.format
        return body


def main() -> None:
    """Serve until interrupted, printing the CLOUDINARY_URL that points at this server."""
    import argparse

    parser = argparse.ArgumentParser(description="A local Cloudinary stand-in (tests and demos only).")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--cloud-name", default="gatehouse-local")
    parser.add_argument("--api-key", default="123456789012345")
    parser.add_argument("--api-secret", default="local-secret")
    args = parser.parse_args()
    server = CloudinaryServer(
        cloud_name=args.cloud_name, api_key=args.api_key, api_secret=args.api_secret, port=args.port
    ).start()
    print(server.cloudinary_url(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
