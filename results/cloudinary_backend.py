"""Result files on Cloudinary: a django-cloudinary-storage backend with deterministic public ids and timeouts.

Imported only when Cloudinary is configured (settings put its aliases in STORAGES then):
django-cloudinary-storage refuses to import without credentials.

The SDK reads its configuration from the environment itself, exactly as documented:
`CLOUDINARY_URL` with every query parameter (`upload_prefix`, `cname`, `secure_distribution`,
`private_cdn`, ...), or, when `CLOUDINARY_CLOUD_NAME` is set, every `CLOUDINARY_*` variable.
`configure_sdk()` reloads it and fixes what the URL form leaves as strings (`secure=false` would
be a truthy "false"), and undoes django-cloudinary-storage's `cloudinary.config(secure=True)`.

What this backend changes from `MediaCloudinaryStorage`:

- the public id is the file's name (under `CLOUDINARY_STORAGE["PREFIX"]`), without the extension
  for images and videos (Cloudinary keeps that as the format), uploaded with `overwrite=True`
  and no random suffix: a retried or redelivered upload replaces the same asset, never adds one;
- `save()` returns the name it was given, so the database keeps one name for a file whatever
  storage holds it; `url()`, `delete()` and `exists()` map it back to the public id;
- every call has a timeout (`RESULTS_STORAGE_TIMEOUT`), `delete()` invalidates the CDN copies
  and counts a missing asset as deleted, and SDK errors become `StorageUnavailable` (worth
  retrying: no answer, a 5xx, rate limited) or `StorageRejected` (bad credentials or request).
"""

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import cloudinary
import cloudinary.api
import cloudinary.exceptions
import cloudinary.uploader
import requests
import urllib3
from cloudinary_storage.storage import MediaCloudinaryStorage
from django.conf import settings
from django.utils.deconstruct import deconstructible

from results.storage import StorageRejected, StorageUnavailable

# Keys of the SDK configuration that are flags, and ones that are numbers: from a CLOUDINARY_URL
# query they arrive as strings.
_FLAG_KEYS = {
    "secure",
    "private_cdn",
    "cdn_subdomain",
    "secure_cdn_subdomain",
    "sign_url",
    "force_version",
    "shorten",
    "use_root_path",
    "long_url_signature",
    "disable_tcp_keep_alive",
    "use_cache",
    "analytics",
}
_NUMERIC_KEYS = {"signature_version": int, "timeout": float, "chunk_size": int}
_FALSE = ("false", "0", "no", "off")
_TRUE = ("true", "1", "yes", "on")
# Answers that retrying will not change (the others, 5xx and 420/429 included, may pass later).
_REJECTIONS = (
    cloudinary.exceptions.BadRequest,
    cloudinary.exceptions.AuthorizationRequired,
    cloudinary.exceptions.NotAllowed,
    cloudinary.exceptions.NotFound,
    cloudinary.exceptions.AlreadyExists,
)


def _as_flag(value):
    if isinstance(value, str) and value.strip().lower() in _FALSE + _TRUE:
        return value.strip().lower() in _TRUE
    return value


def configure_sdk() -> cloudinary.Config:
    """(Re)load the SDK's configuration from the environment, with flags and numbers as such.

    The storage's `SECURE` (True unless the URL or CLOUDINARY_SECURE says otherwise) applies only
    when the environment does not say: django-cloudinary-storage sets it on import.
    """
    cloudinary.reset_config()
    config = cloudinary.config()
    for key, value in list(vars(config).items()):
        if key in _NUMERIC_KEYS and isinstance(value, str):
            config.update(**{key: _NUMERIC_KEYS[key](value)})
        elif key in _FLAG_KEYS:
            config.update(**{key: _as_flag(value)})
    if config.secure is None:
        config.update(secure=getattr(settings, "CLOUDINARY_STORAGE", {}).get("SECURE", True))
    return config


configure_sdk()


@dataclass(frozen=True)
class RemoteAsset:
    """An asset listed by the Admin API, with the storage name it corresponds to."""

    public_id: str
    resource_type: str
    name: str | None  # None: not under our prefix
    bytes: int
    created_at: str


def _timeout() -> urllib3.Timeout:
    seconds = settings.RESULTS_STORAGE_TIMEOUT
    # A read timeout per socket operation (a large upload that progresses is not cut), and a
    # short connect timeout: urllib3 retries a connection that cannot be made.
    return urllib3.Timeout(connect=min(seconds, 3.0), read=seconds)


def _translate(error: Exception) -> Exception:
    if isinstance(error, _REJECTIONS):
        return StorageRejected(f"Cloudinary refused the request: {error}")
    return StorageUnavailable(f"Cloudinary did not answer usefully: {error}")


@deconstructible
class CloudinaryStorage(MediaCloudinaryStorage):
    """One Cloudinary resource type (image or raw) as a Django storage; see the module docstring."""

    label = "Cloudinary"
    # save() replaces an asset of the same name in place: no exists()/delete() round trip first.
    overwrites = True

    def __init__(self, resource_type: str = "image", tag: str | None = None):
        super().__init__(
            tag=tag or getattr(settings, "CLOUDINARY_STORAGE", {}).get("MEDIA_TAG", "gatehouse"),
            resource_type=resource_type,
        )

    @property
    def service(self) -> str:
        """The service behind the storage: the image and raw storages of one cloud fail together."""
        return f"cloudinary:{cloudinary.config().cloud_name}"

    # names <-> public ids ------------------------------------------------------

    def _get_prefix(self) -> str:
        return getattr(settings, "CLOUDINARY_STORAGE", {}).get("PREFIX", "gatehouse")

    def _keeps_extension(self) -> bool:
        return self.RESOURCE_TYPE == "raw"

    def public_id(self, name: str) -> str:
        name = self._prepend_prefix(self._normalise_name(name))
        if self._keeps_extension():
            return name
        return posixpath.splitext(name)[0]

    def _format(self, name: str) -> str | None:
        extension = posixpath.splitext(name)[1].lstrip(".")
        return None if self._keeps_extension() or not extension else extension.lower()

    def name_for(self, public_id: str, fmt: str | None) -> str | None:
        """The storage name of an asset (None when it is not under our prefix)."""
        prefix = self._normalize_path(self._get_prefix().lstrip("/"))
        if not public_id.startswith(prefix):
            return None
        name = public_id[len(prefix) :]
        return name if self._keeps_extension() or not fmt else f"{name}.{fmt}"

    # Storage API ------------------------------------------------------------------

    def _save(self, name: str, content) -> str:
        name = self._normalise_name(name)
        content.seek(0)
        data = content.read()
        try:
            response = cloudinary.uploader.upload(
                (posixpath.basename(name), data),
                public_id=self.public_id(name),
                resource_type=self.RESOURCE_TYPE,
                type="upload",
                overwrite=True,
                invalidate=True,
                unique_filename=False,
                use_filename=False,
                tags=[self.TAG],
                timeout=_timeout(),
            )
        except cloudinary.exceptions.Error as error:
            raise _translate(error) from error
        saved = self.name_for(response.get("public_id", ""), response.get("format") or self._format(name))
        if saved is None:  # an upload preset moved it out of our prefix: keep what the storage says
            raise StorageRejected(f"Cloudinary stored the file as {response.get('public_id')!r}, outside the prefix")
        return saved

    def delete(self, name: str) -> None:
        """Destroy the asset and invalidate its CDN copies; an asset that is already gone counts as deleted."""
        try:
            response = cloudinary.uploader.destroy(
                self.public_id(name),
                resource_type=self.RESOURCE_TYPE,
                type="upload",
                invalidate=True,
                timeout=_timeout(),
            )
        except cloudinary.exceptions.Error as error:
            raise _translate(error) from error
        if response.get("result") not in ("ok", "not found"):
            raise StorageUnavailable(f"Cloudinary did not destroy {self.public_id(name)}: {response}")

    def url(self, name: str) -> str:
        resource = cloudinary.CloudinaryResource(
            self.public_id(name), format=self._format(name), default_resource_type=self.RESOURCE_TYPE
        )
        return resource.url

    def _get_url(self, name: str) -> str:
        return self.url(name)

    def _delivery(self, method: str, name: str) -> requests.Response:
        seconds = settings.RESULTS_STORAGE_TIMEOUT
        try:
            return requests.request(method, self.url(name), timeout=(min(seconds, 3.0), seconds))
        except requests.RequestException as error:
            raise StorageUnavailable(f"Cloudinary delivery did not answer: {error}") from error

    def exists(self, name: str) -> bool:
        response = self._delivery("HEAD", name)
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise StorageUnavailable(f"Cloudinary delivery answered {response.status_code}")
        return True

    def size(self, name: str) -> int | None:
        response = self._delivery("HEAD", name)
        return int(response.headers["Content-Length"]) if response.status_code == 200 else None

    def _open(self, name: str, mode: str = "rb"):
        from django.core.files.base import ContentFile

        response = self._delivery("GET", name)
        if response.status_code == 404:
            raise FileNotFoundError(name)
        if response.status_code >= 400:
            raise StorageUnavailable(f"Cloudinary delivery answered {response.status_code}")
        file = ContentFile(response.content, name=name)
        file.mode = mode
        return file

    def list_assets(self, *, page_size: int = 500) -> Iterator[RemoteAsset]:
        """Every asset of this resource type under our prefix's results/ folder (Admin API, paginated)."""
        prefix = self._normalize_path(self._get_prefix().lstrip("/")) + "results/"
        cursor = None
        while True:
            options = {"type": "upload", "prefix": prefix, "max_results": page_size, "timeout": _timeout()}
            if cursor:
                options["next_cursor"] = cursor
            try:
                response = cloudinary.api.resources(resource_type=self.RESOURCE_TYPE, **options)
            except Exception as error:  # the Admin API raises plain Exception for unknown statuses
                raise _translate(error) from error
            for resource in response.get("resources", []):
                yield RemoteAsset(
                    public_id=resource["public_id"],
                    resource_type=self.RESOURCE_TYPE,
                    name=self.name_for(resource["public_id"], resource.get("format")),
                    bytes=resource.get("bytes", 0),
                    created_at=resource.get("created_at", ""),
                )
            cursor = response.get("next_cursor")
            if not cursor:
                return
