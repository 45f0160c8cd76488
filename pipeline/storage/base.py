"""The interface every kind of storage offers, the one factory `Store.at`, and set-up checks."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pipeline import safety
from pipeline.errors import UsageError

MAX_KNOWN_ROOTS = 256  # stores remembered per process by `Store.at` (a few per run)


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


class Store(abc.ABC):
    """A root (absolute local path or URL) under which relative POSIX paths live.

    Get one with `Store.at`. Paths given to its methods are relative to the root and never
    climb out of it (`safety.check_rel`).
    """

    root: str
    remote: ClassVar[bool]  # an object store (URL), not a local folder

    @classmethod
    def at(cls, location: str | Path, *, confined: bool = False) -> Store:
        """The store for `location`: a folder (resolved to an absolute path) or a URL.

        `confined`: local reads refuse a path whose symbolic links lead outside the root.
        A root this process already normalised is taken as it is: tasks ask for their stores
        by root once per image, and resolving a path costs a system call per component.
        """
        key = (location, confined) if isinstance(location, str) else None
        known = _KNOWN.get(key) if key else None
        if known is not None:
            return known
        store = _normalised(location, confined=confined)
        if len(_KNOWN) >= MAX_KNOWN_ROOTS:
            _KNOWN.clear()
        _KNOWN[(store.root, confined)] = store
        return store

    def url(self, rel: str = "") -> str:
        """The full path or URL of `rel` (the root itself for "")."""
        return f"{self.root}/{safety.check_rel(rel)}" if rel else self.root

    def read_marker(self, rel: str) -> bytes | None:
        """The pipeline marker of an output, or None when absent or not ours."""
        try:
            return self.inspect(rel)[1]
        except OSError:
            return None

    @abc.abstractmethod
    def list_folder(self, rel: str) -> list[Entry]:
        """The entries of one folder (not recursive)."""

    @abc.abstractmethod
    def identity(self, rel: str) -> tuple[int, str]:
        """(size, version) of a source: a changed version means a changed file."""

    @abc.abstractmethod
    def read(self, rel: str) -> bytes:
        """The whole content of a source."""

    @abc.abstractmethod
    def inspect(self, rel: str) -> tuple[bool, bytes | None]:
        """(an output exists at `rel`, its pipeline marker or None when not ours)."""

    @abc.abstractmethod
    def written_by(self, rel: str, run_id: str, started_ns: int) -> bool:
        """Whether this run (an earlier attempt of it) already wrote this output."""

    @abc.abstractmethod
    def write(self, rel: str, data: bytes, marker: bytes, run_id: str = "") -> None:
        """Write an output completely or not at all."""

    @abc.abstractmethod
    def check_writable(self) -> None:
        """Raise OSError when outputs cannot be written here (before any work starts)."""


_KNOWN: dict[tuple[str, bool], Store] = {}


def _normalised(location: str | Path, *, confined: bool) -> Store:
    # here, not at the top: the kinds import this module for the interface
    from pipeline.storage.local import LocalStore
    from pipeline.storage.remote import ObjectStore

    if is_url(location):
        safety.reject_credentials(str(location))
        return ObjectStore(str(location).rstrip("/"))  # no links in object stores to confine
    text = str(location).removeprefix("file://")
    return LocalStore(str(Path(text).expanduser().resolve()), confined=confined)


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
