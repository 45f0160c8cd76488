"""Where inputs are read and outputs written: a local folder, or any fsspec URL (s3://...).

A `Store` is a root plus relative POSIX paths. It is small and picklable: tasks carry the
root's URL to the workers, and each worker process opens the file system itself with its own
credentials (environment variables such as `AWS_ENDPOINT_URL`, profiles, fsspec config), so
no secret ever travels in the task graph or on a command line.

Local outputs are written atomically (see `outputs`); object-store outputs with one PUT, so
an object is complete or absent. Either way the output JPEG carries the marker that names its
settings and source (`outputs.marker`); objects also get it as user metadata.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import outputs, safety
from pipeline.errors import UsageError

HEAD_BYTES = 4096
RUN_METADATA = "pipeline-run"  # object metadata: the run that wrote it
FS_CLOCK_SLACK_NS = 20_000_000  # 20 ms: a few ticks of the kernel's coarse file-time clock


def is_url(location: str | Path) -> bool:
    """True for `protocol://...` locations other than file://."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def as_location(text: str | Path) -> str | Path:
    """A command-line location: URLs stay strings (a Path would fold `s3://` into `s3:/`)."""
    return str(text) if is_url(text) else Path(text)


@dataclass(frozen=True)
class Entry:
    """One listed name: a file (with its size in bytes, 0 if unknown) or a folder."""

    name: str
    is_dir: bool
    size: int = 0


@dataclass(frozen=True)
class Store:
    """A root (absolute local path or URL) under which relative POSIX paths live.

    `confined`: local reads refuse a path whose symbolic links lead outside the root.
    """

    root: str
    confined: bool = False

    @classmethod
    def at(cls, location: str | Path) -> Store:
        if is_url(location):
            safety.reject_credentials(str(location))
            return cls(str(location).rstrip("/"))
        text = str(location).removeprefix("file://")
        return cls(str(Path(text).expanduser().resolve()))

    @property
    def remote(self) -> bool:
        return is_url(self.root)

    def url(self, rel: str = "") -> str:
        return f"{self.root}/{safety.check_rel(rel)}" if rel else self.root

    def _source(self, rel: str) -> str:
        """The local path to read `rel` from: its real path when links must stay inside."""
        return safety.confined(self.root, rel) if self.confined else self.url(rel)

    def _local(self, rel: str) -> tuple[Path, Path]:
        """(the output path, the root) for writing below the root without following links."""
        return Path(self.url(rel)), Path(self.root)

    # -- reading ------------------------------------------------------------------------------
    def list_folder(self, rel: str) -> list[Entry]:
        """The entries of one folder (not recursive)."""
        if not self.remote:
            with os.scandir(self.url(rel)) as entries:
                return [_local_entry(e) for e in entries if _local_kind(e)]
        found = []
        for info in _fs(self.root).ls(self.url(rel), detail=True):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if name:
                is_dir = info.get("type") == "directory"
                found.append(Entry(name, is_dir, 0 if is_dir else int(info.get("size") or 0)))
        return found

    def identity(self, rel: str) -> tuple[int, str]:
        """(size, version) of a source: a changed version means a changed file."""
        if not self.remote:
            st = os.stat(self._source(rel))
            return st.st_size, str(st.st_mtime_ns)
        info = _fs(self.root).info(self.url(rel))
        version = info.get("ETag") or info.get("etag") or info.get("mtime") or ""
        return int(info["size"]), str(version).strip('"')

    def read(self, rel: str) -> bytes:
        if not self.remote:
            return Path(self._source(rel)).read_bytes()
        return bytes(_fs(self.root).cat_file(self.url(rel)))

    def read_marker(self, rel: str) -> bytes | None:
        """The pipeline marker of an output, or None when absent or not ours."""
        try:
            return self.inspect(rel)[1]
        except OSError:
            return None

    def inspect(self, rel: str) -> tuple[bool, bytes | None]:
        """(an output exists at `rel`, its pipeline marker or None when not ours)."""
        if not self.remote:
            return outputs.inspect(*self._local(rel))
        try:
            head = _fs(self.root).cat_file(self.url(rel), start=0, end=HEAD_BYTES)
        except FileNotFoundError:
            return False, None
        return True, outputs.find_marker(bytes(head))

    def written_by(self, rel: str, run_id: str, started_ns: int) -> bool:
        """Whether this run (an earlier attempt of it) already wrote this output.

        Local files: modified since the run started. The kernel stamps files from its coarse
        clock, which lags `time.time_ns()` by up to one timer tick, so a file written just
        after the start can carry an earlier time: FS_CLOCK_SLACK_NS allows for it (far less
        than any run takes to start, so an earlier run's output is never taken for this one's).
        Objects: the run id in their metadata, since object stores keep whole seconds and
        another machine's clock.
        """
        try:
            if not self.remote:
                modified = outputs.modified_ns(*self._local(rel)) or 0
                return modified >= started_ns - FS_CLOCK_SLACK_NS
            fs = _fs(self.root)
            if hasattr(fs, "metadata"):
                return bool(fs.metadata(self.url(rel)).get(RUN_METADATA) == run_id)
            stamp = fs.info(self.url(rel)).get("mtime") or 0
        except (FileNotFoundError, OSError):
            return False
        seconds = stamp.timestamp() if isinstance(stamp, datetime) else float(stamp)
        return seconds * 1e9 >= started_ns

    # -- writing ------------------------------------------------------------------------------
    def write(self, rel: str, data: bytes, marker: bytes, run_id: str = "") -> None:
        """Write an output completely or not at all."""
        if not self.remote:
            path, root = self._local(rel)
            outputs.write_atomic(path, data, root)
            return
        metadata = {"pipeline": marker.decode("ascii", "replace"), RUN_METADATA: run_id}
        _fs(self.root).pipe_file(self.url(rel), data, **_put_options(self.root, metadata))

    def check_writable(self) -> None:
        """Raise OSError when outputs cannot be written here (before any work starts)."""
        if not self.remote:
            import tempfile

            Path(self.root).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root, prefix=".pipeline-probe-"):
                return
        fs = _fs(self.root)
        bucket = self.root.split("://", 1)[1].split("/", 1)[0]
        if not fs.exists(f"{self.root.split('://', 1)[0]}://{bucket}"):
            raise FileNotFoundError(f"bucket not found: {bucket}")


def check_locations(input: str | Path, output: str | Path) -> None:
    """Set-up errors before any work: an unreadable input, or an output we cannot write."""
    source, target = Store.at(input), Store.at(output)
    if source.remote == target.remote:
        safety.check_overlap(source.root, target.root, remote=source.remote)
    try:
        source.list_folder("")
    except FileNotFoundError:
        raise UsageError(f"input folder not found: {input}") from None
    except Exception as exc:  # NotADirectoryError, PermissionError, bad credentials...
        raise UsageError(f"cannot read input {input}: {_reason(exc)}") from None
    try:
        target.check_writable()
    except Exception as exc:
        raise UsageError(f"output folder is not writable: {output} ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _local_kind(entry: os.DirEntry[str]) -> bool:
    """Folders that are not symbolic links, and files (following links)."""
    with contextlib.suppress(OSError):
        return entry.is_dir(follow_symlinks=False) or entry.is_file()
    return False


def _local_entry(entry: os.DirEntry[str]) -> Entry:
    if entry.is_dir(follow_symlinks=False):
        return Entry(entry.name, True)
    try:
        size = entry.stat().st_size  # one stat per file, following links; cached by the entry
    except OSError:
        size = 0
    return Entry(entry.name, False, size)


def _put_options(root: str, metadata: dict[str, str]) -> dict[str, Any]:
    if root.startswith(("s3://", "s3a://")):
        return {"Metadata": metadata, "ContentType": "image/jpeg"}
    return {}


@functools.cache
def _fs(root: str) -> Any:
    """The fsspec file system for a URL, opened once per process from the environment."""
    import fsspec

    protocol = root.split("://", 1)[0]
    return fsspec.filesystem(protocol)
