"""Output files: atomic writes under the output root, and the marker of the pipeline's outputs.

Every output carries a marker `pipeline fp=<settings fingerprint> src=<size>:<version>` naming
the settings and the exact source it was made from: a JPEG in a COM segment, a WebP or AVIF as
an XML comment in its XMP packet, near the start of the file either way (`pipeline.encode`). An
output is up to date when its marker matches; reading it costs one small read of the file's
head (a longer one only when a kept EXIF block comes first). A file without the marker was not
written by the pipeline and is never replaced unless the user asks (`--overwrite`).

Nothing is written, listed or deleted outside the output root: folders below the root are
entered one at a time with `O_NOFOLLOW` relative to their parent's descriptor (`openat`), so a
symbolic link anywhere in the output tree is refused rather than followed, and every create,
rename and unlink names an entry of a folder reached that way.

Writes never leave a partial file under the final name: on Linux the bytes go to an anonymous
`O_TMPFILE` inode that is linked in only once complete, so a killed worker leaves nothing
behind. Elsewhere (or when replacing an existing output) a hidden temp file in the same folder
is renamed over the target; leftovers of a killed writer are removed the next time the same
output is written. Temp names stay within the file system's name limit (a hash stands in for
a long name).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

MARKER_PREFIX = b"pipeline "
TEMP_PREFIX = ".pipeline-"
TEMP_SUFFIX = ".tmp"
#: What an up-to-date check reads first: an output's first headers, where its marker is.
HEAD_BYTES = 4096
#: How far into a file a marker may lie: behind at most a kept EXIF and XMP block (64 KiB each).
MARKER_SPAN = 1 << 18
#: The extended attribute that names the run which wrote an output, where the file system keeps
#: them: a retried partition tells its own outputs from an earlier run's exactly, however soon
#: one run follows another. The marker cannot hold it: an output's bytes depend only on its
#: source and settings.
RUN_ATTRIBUTE = "user.pipeline.run"
_XMP_START = b"<!--" + MARKER_PREFIX
#: The XMP packet that carries a marker when the output has no XMP of its own.
_EMPTY_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/><?xpacket end="r"?>'
)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_EXTRA = len(TEMP_PREFIX) + 1 + 8 + len(TEMP_SUFFIX)  # prefix, dot, token, suffix


def marker(fingerprint: str, size: int, version: str | int) -> bytes:
    """The COM payload that identifies the settings and the source of an output.

    `version` is what changes when the source changes: its mtime in ns for a local file,
    its ETag for an object.
    """
    return MARKER_PREFIX + f"fp={fingerprint} src={size}:{version}".encode()


def marker_xmp(marker: bytes, xmp: bytes | None = None) -> bytes:
    """An XMP packet (`xmp`, or an empty one) carrying `marker` as a comment at its start."""
    packet = xmp or _EMPTY_XMP
    comment = b"<!--" + marker + b"-->"
    if packet.startswith(b"<?"):  # after the xpacket (or XML) declaration, which comes first
        end = packet.find(b"?>") + 2
        return packet[:end] + comment + packet[end:]
    return comment + packet


def read_marker(path: Path, root: Path | None = None) -> bytes | None:
    """The pipeline marker in a JPEG's head, or None (no file, not ours, unreadable)."""
    try:
        return inspect(path, root)[1]
    except OSError:
        return None


def inspect(path: Path, root: Path | None = None) -> tuple[bool, bytes | None]:
    """(something is at `path`, its pipeline marker or None) without following links below root.

    A symbolic link or a folder at `path` exists and has no marker. Raises OSError when a
    folder on the way is a symbolic link.
    """
    try:
        with _folder(path, root, create=False) as folder:
            fd = _open_entry(folder, path.name)
    except FileNotFoundError:
        return False, None
    if fd is None:
        return True, None
    try:
        found = marker_of(lambda start, end: os.pread(fd, end - start, start))
    except OSError:
        return True, None
    finally:
        os.close(fd)
    return True, found


def _open_entry(folder: int, name: str) -> int | None:
    """A descriptor for reading the file `name`; None when it is a link, folder or unreadable."""
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.EACCES, errno.EPERM):
            return None
        raise


def marker_of(read: Callable[[int, int], bytes]) -> bytes | None:
    """The pipeline marker of a file read through `read(start, end)`, or None: one read of its
    head, and a second one up to MARKER_SPAN only when kept metadata may have pushed the marker
    past the head (a JPEG whose header segments go on, a WebP or AVIF)."""
    head = read(0, HEAD_BYTES)
    found = find_marker(head)
    if found is None and len(head) == HEAD_BYTES and _may_hold_marker(head):
        found = find_marker(head + read(HEAD_BYTES, MARKER_SPAN))
    return found


def find_marker(head: bytes) -> bytes | None:
    """The pipeline marker in the first bytes of a JPEG, WebP or AVIF, or None."""
    if _is_webp_or_avif(head):
        start = head.find(_XMP_START)
        end = head.find(b"-->", start)
        return head[start + 4 : end] if start >= 0 and end >= 0 else None
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


def _is_webp_or_avif(head: bytes) -> bool:
    return (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[4:8] == b"ftyp"


def _may_hold_marker(head: bytes) -> bool:
    """A JPEG whose header segments go on past `head`, or a WebP/AVIF: read on for a marker."""
    return head.startswith(b"\xff\xd8") or _is_webp_or_avif(head)


def modified_ns(path: Path, root: Path | None = None) -> int | None:
    """The mtime (ns) of the entry at `path` itself (a link is not followed), or None."""
    try:
        with _folder(path, root, create=False) as folder:
            return os.stat(path.name, dir_fd=folder, follow_symlinks=False).st_mtime_ns
    except OSError:
        return None


def run_of(path: Path, root: Path | None = None) -> str | None:
    """The run id kept with the file at `path` (`RUN_ATTRIBUTE`), without following links.

    "" when it has none (or there is no file); None when the file system cannot say (it keeps
    no extended attributes, or refuses to read them), so that only the file's mtime can tell
    (`modified_ns`).
    """
    if not hasattr(os, "getxattr"):  # not Linux
        return None
    try:
        with _folder(path, root, create=False) as folder:
            fd = _open_entry(folder, path.name)
    except OSError:
        return ""
    if fd is None:
        return ""
    try:
        return os.getxattr(fd, RUN_ATTRIBUTE).decode(errors="replace")
    except OSError as exc:
        return "" if exc.errno == errno.ENODATA else None  # ENODATA: written by no run
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, root: Path | None = None, run_id: str = "") -> None:
    """Write `data` to `path` so that `path` is either absent, its old content, or complete.

    `run_id` is kept with the file where the file system allows (`RUN_ATTRIBUTE`). With
    `root`, the folders between `root` and `path` are created or entered without following
    symbolic links; without it, `path`'s own folder is the root. An entry at `path` is replaced
    (a symbolic link itself, never what it points to).
    """
    with _folder(path, root, create=True) as folder:
        name = path.name
        _remove_stale_temps(folder, name)
        if _mode(folder, name) is None and _write_linked(folder, name, data, run_id):
            return
        temp = f"{_temp_stem(folder, name)}{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            _write_file(folder, temp, data, flags, run_id)
            os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=folder)
            raise


def remove_stale_temps(path: Path, root: Path | None = None) -> None:
    """Remove temp files left for `path` by a writer that was killed before its rename."""
    with contextlib.suppress(OSError), _folder(path, root, create=False) as folder:
        _remove_stale_temps(folder, path.name)


@contextlib.contextmanager
def _folder(path: Path, root: Path | None, *, create: bool) -> Iterator[int]:
    """A descriptor of `path`'s folder, reached from `root` without following symbolic links."""
    base = path.parent if root is None else root
    parts = path.parent.relative_to(base).parts if root is not None else ()
    if create:
        base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, part in enumerate(parts):
            child = _enter(fd, part, create=create, shown=Path(*parts[: depth + 1]))
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _enter(fd: int, part: str, *, create: bool, shown: Path) -> int:
    """Open the sub-folder `part` of `fd`; a symbolic link is an error, never followed."""
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o777, dir_fd=fd)
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and stat.S_ISLNK(_mode(fd, part) or 0):
            raise OSError(
                errno.ELOOP, "symbolic link in the output folder, not followed", str(shown)
            ) from None
        raise


def _mode(folder: int, name: str) -> int | None:
    """The file type and mode of the entry `name` itself (links not followed), or None."""
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except OSError:
        return None


def _temp_stem(folder: int, name: str) -> str:
    """`.pipeline-<name>.`, with a hash for `name` when the temp name would be too long."""
    try:
        limit = os.fpathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(name)) + _TEMP_EXTRA <= limit:
        return f"{TEMP_PREFIX}{name}."
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
    return f"{TEMP_PREFIX}#{digest}."


def _remove_stale_temps(folder: int, name: str) -> None:
    prefix = _temp_stem(folder, name)
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry.name, dir_fd=folder)


def _write_linked(folder: int, name: str, data: bytes, run_id: str) -> bool:
    """Write through an anonymous O_TMPFILE inode and link it in; False when unsupported."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return False
    try:
        fd = os.open(".", flag | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=folder)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return False
        raise
    try:
        _write_all(fd, data)
        _tag(fd, run_id)
        try:
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=folder)
        except FileExistsError:
            return False  # another attempt won the race: fall back to replace
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EXDEV, errno.EPERM):
                return False  # no /proc, or the file system refuses: use a named temp file
            raise
        return True
    finally:
        os.close(fd)


def _write_file(folder: int, name: str, data: bytes, flags: int, run_id: str) -> None:
    fd = os.open(name, flags, 0o666, dir_fd=folder)
    try:
        _write_all(fd, data)
        _tag(fd, run_id)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _tag(fd: int, run_id: str) -> None:
    """Keep `run_id` with the file (before it gets its name, so it never shows without it)."""
    if run_id and hasattr(os, "setxattr"):
        with contextlib.suppress(OSError):  # not kept on this file system: its mtime tells
            os.setxattr(fd, RUN_ATTRIBUTE, run_id.encode())
