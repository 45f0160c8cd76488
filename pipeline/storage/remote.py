"""An object store or any fsspec URL: one PUT per output, the marker also in user metadata."""

from __future__ import annotations

import functools
import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pipeline import outputs
from pipeline.storage.base import Entry, Store

RUN_METADATA = "pipeline-run"  # object metadata: the run that wrote it
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".avif": "image/avif",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class ObjectStore(Store):
    """A URL (`s3://bucket/prefix`, `gs://...`, `memory://...`) opened through fsspec."""

    root: str
    remote: ClassVar[bool] = True

    def list_folder(self, rel: str) -> list[Entry]:
        found = []
        for info in file_system(self.root).ls(self.url(rel), detail=True):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if name:
                is_dir = info.get("type") == "directory"
                found.append(Entry(name, is_dir, 0 if is_dir else int(info.get("size") or 0)))
        return found

    def identity(self, rel: str) -> tuple[int, str]:
        info = file_system(self.root).info(self.url(rel))
        version = info.get("ETag") or info.get("etag") or info.get("mtime") or ""
        return int(info["size"]), str(version).strip('"')

    def read(self, rel: str) -> bytes:
        return bytes(file_system(self.root).cat_file(self.url(rel)))

    def inspect(self, rel: str) -> tuple[bool, bytes | None]:
        """Ranged GETs: the head, and more only when the marker may lie past it."""
        fs, url = file_system(self.root), self.url(rel)
        try:
            found = outputs.marker_of(
                lambda start, end: bytes(fs.cat_file(url, start=start, end=end))
            )
        except FileNotFoundError:
            return False, None
        return True, found

    def written_by(self, rel: str, run_id: str, started_ns: int) -> bool:
        """The run id in the object's metadata where the store keeps metadata, else its mtime.

        Metadata first: object stores keep whole seconds and another machine's clock.
        """
        fs = file_system(self.root)
        try:
            if hasattr(fs, "metadata"):
                return bool(fs.metadata(self.url(rel)).get(RUN_METADATA) == run_id)
            stamp = fs.info(self.url(rel)).get("mtime") or 0
        except OSError:  # FileNotFoundError included
            return False
        seconds = stamp.timestamp() if isinstance(stamp, datetime) else float(stamp)
        return seconds * 1e9 >= started_ns

    def write(self, rel: str, data: bytes, marker: bytes, run_id: str = "") -> None:
        """One PUT: the object is complete or absent."""
        options = self._put_options(rel, marker, run_id)
        file_system(self.root).pipe_file(self.url(rel), data, **options)

    def check_writable(self) -> None:
        protocol, _, path = self.root.partition("://")
        bucket = path.split("/", 1)[0]
        if not file_system(self.root).exists(f"{protocol}://{bucket}"):
            raise FileNotFoundError(f"bucket not found: {bucket}")

    def _put_options(self, rel: str, marker: bytes, run_id: str) -> dict[str, Any]:
        """S3's user metadata and Content-Type; other fsspec stores take no such options."""
        if not self.root.startswith(("s3://", "s3a://")):
            return {}
        metadata = {"pipeline": marker.decode("ascii", "replace"), RUN_METADATA: run_id}
        return {"Metadata": metadata, "ContentType": content_type(rel)}


def content_type(name: str) -> str:
    """The MIME type an output is served with, from its extension."""
    return CONTENT_TYPES.get(posixpath.splitext(name)[1].lower(), DEFAULT_CONTENT_TYPE)


@functools.cache
def file_system(root: str) -> Any:
    """The fsspec file system for a URL, opened once per process from the environment."""
    import fsspec

    protocol = root.split("://", 1)[0]
    return fsspec.filesystem(protocol)
