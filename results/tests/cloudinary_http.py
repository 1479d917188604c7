"""The HTTP side of the local Cloudinary server (results/tests/cloudinary_server.py): paths, forms, answers."""

import contextlib
import json
import re
import secrets
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from results.tests.cloudinary_server import CloudinaryServer


class CloudinaryRequestHandler(BaseHTTPRequestHandler):
    """Parses the HTTP requests and hands them to the server's state (`server_state`, a CloudinaryServer)."""

    server_state: "CloudinaryServer"  # set by CloudinaryServer.start()
    api_path = re.compile(r"/v1_1/([^/]+)/(image|raw|video)/(upload|destroy)")
    resources_path = re.compile(r"/v1_1/([^/]+)/resources/(image|raw|video)(?:/upload)?")

    def log_message(self, format, *args):  # quiet: the calls are recorded instead
        pass

    def _send(self, status: int, body: dict | bytes, content_type: str = "application/json", head: bool = False):
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-Id", secrets.token_hex(8))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _wait(self, action: str) -> None:
        delay = self.server_state._delay_for(action)
        if delay:
            time.sleep(delay)

    def do_POST(self):
        state = self.server_state
        path = urlsplit(self.path).path
        match = self.api_path.fullmatch(path)
        if not match or match.group(1) != state.cloud_name:
            self._send(404, {"error": {"message": f"Unknown path {path}"}})
            return
        _, resource_type, action = match.groups()
        params, file, filename = self._form()
        status, body = state.handle_api(action, resource_type, params, file, filename)
        self._wait(action)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting (its timeout)
            self._send(status, body)

    def do_GET(self, head: bool = False):
        state = self.server_state
        parts = urlsplit(self.path)
        match = self.resources_path.fullmatch(parts.path)
        if match and not head:
            if match.group(1) != state.cloud_name:
                self._send(404, {"error": {"message": "Unknown cloud"}})
                return
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            status, body = state.handle_resources(match.group(2), query, self.headers.get("Authorization", ""))
            self._wait("resources")
            self._send(status, body)
            return
        asset = state.find_delivered(parts.path)
        if asset is None:
            self._send(404, b"Resource not found", content_type="text/plain", head=head)
            return
        self._send(200, asset.data, content_type=asset.content_type, head=head)

    def do_HEAD(self):
        self.do_GET(head=True)

    def _form(self) -> tuple[dict[str, str], bytes | None, str]:
        """The request's form fields (array fields `k[]` joined with commas, as they are signed) and file."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "")
        fields: dict[str, list[str]] = {}
        file, filename = None, ""
        if content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if name == "file":
                    file, filename = payload, part.get_filename() or ""
                else:
                    fields.setdefault(name, []).append(payload.decode())
        else:
            for name, values in parse_qs(raw.decode(), keep_blank_values=True).items():
                if name == "file":
                    file = values[-1].encode()
                else:
                    fields[name] = values
        params = {}
        for name, values in fields.items():
            if name.endswith("[]"):
                params[name[:-2]] = ",".join(values)
            else:
                params[name] = values[-1]
        return params, file, filename
