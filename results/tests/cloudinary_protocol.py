"""What the local Cloudinary server knows of Cloudinary's protocol: how requests are signed, what it stores.

What it speaks (as Cloudinary documents it):

- `POST /v1_1/<cloud>/<resource_type>/upload` and `.../destroy` (multipart or urlencoded form),
  signed: `signature` = hex SHA-1 (or SHA-256) of the parameters other than `file`, `api_key`,
  `resource_type`, `cloud_name` and `signature`, sorted, as `key=value` joined with `&` (an `&`
  inside a value escaped as `%26`, signature version 2), followed by the API secret. A wrong
  key, a bad signature or a timestamp older than an hour is a 401 with Cloudinary's error body.
  Upload stores the bytes under `public_id` (a random one when none is given), overwriting
  unless `overwrite` is false; an image's public id has no extension, its `format` does.
  Destroy answers `{"result": "ok"}` or `{"result": "not found"}`.
- `GET /v1_1/<cloud>/resources/<resource_type>[/upload]` (Admin API, HTTP Basic with key and
  secret): `prefix`, `max_results`, `next_cursor`.
- `GET`/`HEAD /<cloud>/<resource_type>/upload/[v<version>/]<public_id>[.<format>]` (and the
  same without `/<cloud>` for a private CDN): the stored bytes.
"""

import hashlib
import mimetypes
from dataclasses import dataclass, field

API_ACTIONS = ("upload", "destroy", "resources")
UNSIGNED_PARAMS = {"file", "api_key", "resource_type", "cloud_name", "signature"}
STALE_AFTER = 3600  # seconds: Cloudinary refuses a request signed longer ago ("Stale request")


def string_to_sign(params: dict[str, str]) -> str:
    """Cloudinary's string to sign (signature version 2), from the parameters as received."""
    pairs = [f"{key}={value}".replace("&", "%26") for key, value in params.items() if value]
    return "&".join(sorted(pairs))


def expected_signature(params: dict[str, str], api_secret: str, *, algorithm: str = "sha1") -> str:
    return hashlib.new(algorithm, (string_to_sign(params) + api_secret).encode()).hexdigest()


@dataclass
class Asset:
    public_id: str
    resource_type: str
    data: bytes
    format: str
    version: int
    created_at: str
    tags: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        if self.resource_type == "image":
            return f"image/{self.format}"
        return mimetypes.guess_type(self.public_id)[0] or "application/octet-stream"


@dataclass
class Call:
    """One API request as the server saw it."""

    action: str  # upload, destroy, resources
    resource_type: str
    params: dict[str, str]
    status: int = 0
    signature_ok: bool | None = None  # None: not a signed call (Admin API uses Basic auth)


def sniff_image_format(data: bytes) -> str:
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"\x89PNG"):
        return "png"
    return "jpg"
