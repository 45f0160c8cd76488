"""Checks that keep a run from touching what it must not: the user's files and secrets.

- `check_overlap`: the output must not be the input, nor contain it (a run would rewrite
  originals and feed on its own outputs). An output folder inside the input is allowed (it is
  not scanned); for object stores it is refused too, as a prefix cannot be skipped cheaply by
  every listing tool the user may point at it later.
- `reject_credentials`: a URL with `user:password@` would carry the secret into messages, the
  report and every task; workers take credentials from their own environment instead.
- `check_rel`: a relative path of the store never climbs out of its root.
- `confined`: an input path whose symbolic links lead outside the input tree is refused.
- `shown`: a name as it may appear on a terminal, control characters escaped.
- `json_row` / `name_from_json`: report rows that strict JSON parsers accept, for any name.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any

from pipeline.errors import ImageError, UsageError

_PROTOCOL_ALIASES = {"s3a": "s3", "gcs": "gs"}


def reject_credentials(location: str) -> None:
    """UsageError (without the secret) when a URL carries credentials in its authority part."""
    if "://" not in location:
        return
    from urllib.parse import urlsplit  # here: the CLI imports this module before any run

    parts = urlsplit(location)
    if "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        safe = f"{parts.scheme}://***@{host}{parts.path}"
        raise UsageError(
            f"credentials in URLs are not accepted ({safe}): give them in the "
            "environment (e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the fsspec "
            "configuration"
        )


def check_overlap(source: str, target: str, *, remote: bool) -> None:
    """UsageError when the output root is the input root or contains it (roots normalised)."""
    same, input_inside = (
        _url_relation(source, target) if remote else _folder_relation(source, target)
    )
    if same:
        raise UsageError(f"the output is the input folder ({target}): choose another output")
    if input_inside:
        raise UsageError(
            f"the input {source} is inside the output folder {target}: "
            "choose an output outside the input"
        )
    if remote and _url_inside(_url_key(target), _url_key(source)):
        raise UsageError(f"output {target} must not be inside the input {source}")


def _folder_relation(source: str, target: str) -> tuple[bool, bool]:
    """(same folder, source inside target) for resolved paths, also by identity (bind mounts)."""
    wanted = local_identity(target)
    same = source == target or (wanted is not None and local_identity(source) == wanted)
    inside = os.path.commonpath([source, target]) == target
    if not inside and wanted is not None:
        parent = os.path.dirname(source)
        while parent != os.path.dirname(parent) and not inside:
            inside = local_identity(parent) == wanted
            parent = os.path.dirname(parent)
    return same, inside and not same


def local_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of a local folder, to recognise it under another name."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _url_relation(source: str, target: str) -> tuple[bool, bool]:
    s, t = _url_key(source), _url_key(target)
    return s == t, s != t and _url_inside(s, t)


def _url_key(url: str) -> tuple[str, str, str]:
    """(protocol, bucket, prefix) with aliases folded and slashes normalised."""
    protocol, _, rest = url.partition("://")
    bucket, _, prefix = rest.strip("/").partition("/")
    parts = [p for p in prefix.split("/") if p]
    return _PROTOCOL_ALIASES.get(protocol, protocol), bucket, "/".join(parts)


def _url_inside(inner: tuple[str, str, str], outer: tuple[str, str, str]) -> bool:
    if inner[:2] != outer[:2]:
        return False
    return not outer[2] or inner[2] == outer[2] or inner[2].startswith(outer[2] + "/")


def check_rel(rel: str) -> str:
    """`rel` when it is a clean relative POSIX path; ImageError for `..`, `.`, `//`, `/x`."""
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts) or "\x00" in rel:
        raise ImageError(f"unsafe path refused: {rel!r}")
    return rel


def confined(root: str, rel: str) -> str:
    """The real path of `root/rel`; ImageError when its links lead outside `root`."""
    real = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([root, real]) != root:
        raise ImageError(
            "symbolic link leads outside the input folder, not followed "
            "(--follow-symlinks allows it)"
        )
    return real


def nfc_key(name: str) -> str:
    """How output names are compared: NFC-normalised and case-folded (macOS, Windows)."""
    return unicodedata.normalize("NFC", name).casefold()


def shown(text: str) -> str:
    """`text` for a terminal: control characters, lone surrogates and backslashes escaped.

    Printable text (any script) is kept; everything else becomes a Python-style escape, so a
    name cannot move the cursor, clear the screen or start a line of its own.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape(ch) for ch in text)


_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with every string valid Unicode, so that its JSON is valid UTF-8 for any parser.

    A local file name that is not valid UTF-8 holds lone surrogates (Python's surrogateescape).
    Its `input`/`output` field then shows it with U+FFFD in place of the bad bytes, and an extra
    field `input_bytes`/`output_bytes` holds the exact name's bytes in base64 (`name_from_json`
    gives the name back). Other text fields get `\\xNN` escapes for the bad bytes.
    """
    if all(not isinstance(v, str) or _valid(v) for v in row.values()):
        return row
    import base64

    safe = dict(row)
    for key, value in row.items():
        if isinstance(value, str) and not _valid(value):
            raw = os.fsencode(value)
            if key in ("input", "output"):
                safe[key] = raw.decode("utf-8", "replace")
                safe[f"{key}_bytes"] = base64.b64encode(raw).decode("ascii")
            else:
                safe[key] = raw.decode("utf-8", "backslashreplace")
    return safe


def name_from_json(row: dict[str, Any], key: str = "input") -> str | None:
    """The exact name of a report row's `input` or `output`, as the file system gives it."""
    raw = row.get(f"{key}_bytes")
    if raw is not None:
        import base64

        return os.fsdecode(base64.b64decode(raw))
    value = row.get(key)
    return None if value is None else str(value)


def _valid(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
