"""Output files: atomic writes and the marker that tells whether an output is up to date.

Every output JPEG carries a COM segment `pipeline fp=<settings fingerprint> src=<size>:<version>`
naming the settings and the exact source it was made from. An output is up to date when its
marker matches; reading it costs one small read of the file's head.

Writes never leave a partial file under the final name: on Linux the bytes go to an anonymous
`O_TMPFILE` inode that is linked in only once complete, so a killed worker leaves nothing
behind. Elsewhere (or when replacing an existing output) a hidden temp file in the same folder
is renamed over the target with `os.replace`; leftovers of a killed writer are removed the next
time the same output is written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

MARKER_PREFIX = b"pipeline "
TEMP_PREFIX = ".pipeline-"
TEMP_SUFFIX = ".tmp"
_HEAD_BYTES = 4096


def marker(fingerprint: str, size: int, version: str | int) -> bytes:
    """The COM payload that identifies the settings and the source of an output.

    `version` is what changes when the source changes: its mtime in ns for a local file,
    its ETag for an object.
    """
    return MARKER_PREFIX + f"fp={fingerprint} src={size}:{version}".encode()


def read_marker(path: Path) -> bytes | None:
    """The pipeline marker in a JPEG's head, or None (no file, not ours, unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return None
    return find_marker(head)


def find_marker(head: bytes) -> bytes | None:
    """The pipeline marker in the first bytes of a JPEG, or None."""
    if not head.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(head) and head[pos] == 0xFF:
        kind = head[pos + 1]
        length = int.from_bytes(head[pos + 2 : pos + 4], "big")
        if kind == 0xFE:
            payload = head[pos + 4 : pos + 2 + length]
            return payload if payload.startswith(MARKER_PREFIX) else None
        if kind in (0xDA, 0xD9):  # start of scan / end of image: no more headers
            return None
        pos += 2 + length
    return None


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` is either absent, its old content, or complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    if not path.exists() and _write_linked(path, data):
        return
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        _write_file(temp, data, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def remove_stale_temps(path: Path) -> None:
    """Remove temp files left for `path` by a writer that was killed before its rename."""
    prefix = f"{TEMP_PREFIX}{path.name}."
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _write_linked(path: Path, data: bytes) -> bool:
    """Write through an anonymous O_TMPFILE inode and link it in; False when unsupported."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return False
    try:
        fd = os.open(path.parent, flag | os.O_WRONLY, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return False
        raise
    try:
        _write_all(fd, data)
        try:
            os.link(f"/proc/self/fd/{fd}", path)
        except FileExistsError:
            return False  # another attempt won the race: fall back to replace
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EXDEV, errno.EPERM):
                return False  # no /proc, or the file system refuses: use a named temp file
            raise
        return True
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes, flags: int) -> None:
    fd = os.open(path, flags, 0o666)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
