"""`--include` / `--exclude`: which inputs a run takes, chosen by glob patterns on their paths.

Patterns match POSIX paths relative to the input (`2024/trip/IMG_0001.HEIC`), as rsync's and
ripgrep's `-g` globs (gitignore style) do:
- `*` is any run of characters within one path component, `?` one character, `[abc]`,
  `[a-z]`, `[!abc]` one character of a set, `{jpg,jpeg}` one of the alternatives, and `\\`
  takes the next character literally.
- `**` as a whole component is any number of folders, none included: `**/x`, `a/**/x`, `a/**`.
- A pattern without a `/` matches a name at any depth (`*.heic` is `**/*.heic`); a pattern
  with a `/` is anchored at the input folder (a leading `/` only anchors: `/*.jpg` matches the
  top folder's JPEGs). A trailing `/` makes a pattern match folders only.
- A pattern that matches a folder applies to everything inside it: `--exclude raw` leaves out
  every folder (and file) named `raw` with all its content, `--include 2024/best` takes that
  whole folder.
- Matching ignores case and Unicode normalisation, as the pipeline's extension and output
  name checks do (a camera's `IMG_0001.JPG` is matched by `*.jpg`).
An input is taken when it matches an include pattern (any input, when there is none) and no
exclude pattern: exclude wins. Folders that are excluded, or that no include pattern can reach,
are not listed at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.errors import UsageError
from pipeline.safety import nfc_key


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    folders_only: bool
    # the components of an anchored pattern, to tell which folders it can reach; None: any
    parts: tuple[re.Pattern[str] | None, ...] | None  # None entry: a `**` component


class Selection:
    """The input paths a run takes: `takes(file)`, and `enters(folder)` for pruning the walk."""

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self.include = tuple(compile_pattern(p, "--include") for p in include)
        self.exclude = tuple(compile_pattern(p, "--exclude") for p in exclude)
        self.everything = not self.include and not self.exclude

    def takes(self, rel: str) -> bool:
        """Whether the input file at `rel` (relative POSIX path) is selected."""
        if self.everything:
            return True
        key = nfc_key(rel)
        if _hits(self.exclude, key, folder=False):
            return False
        return not self.include or _hits(self.include, key, folder=False)

    def enters(self, rel: str) -> bool:
        """Whether the folder at `rel` can hold a selected input, so is worth listing."""
        if self.everything:
            return True
        key = nfc_key(rel)
        if _hits(self.exclude, key, folder=True):
            return False
        if not self.include or _hits(self.include, key, folder=True):
            return True
        names = key.split("/")
        return any(_can_reach(p, names) for p in self.include)


def check(patterns: Iterable[str], flag: str) -> tuple[str, ...]:
    """The patterns as a tuple, each one checked; a bad one raises UsageError."""
    if isinstance(patterns, str):
        patterns = (patterns,)
    out = tuple(patterns)
    for text in out:
        compile_pattern(text, flag)
    return out


def compile_pattern(text: str, flag: str = "pattern") -> _Pattern:
    """One glob pattern (see the module's docstring) as a matcher; UsageError when unusable."""
    if not isinstance(text, str) or not text.strip("/"):
        raise UsageError(f"{flag} needs a glob pattern such as '*.jpg', got {text!r}")
    body = nfc_key(text.removeprefix("./"))
    folders_only = body.endswith("/")
    body = body.rstrip("/")
    anchored = "/" in body
    parts = body.lstrip("/").split("/")
    if ".." in parts or "" in parts:
        raise UsageError(
            f"{flag} {text!r}: patterns are paths inside the input, without '..' or '//'"
        )
    if not anchored:
        parts = ["**", *parts]
    try:
        regex = re.compile(_path_regex(parts))
        reach = tuple(None if p == "**" else re.compile(_component(p)) for p in parts)
    except (re.error, ValueError) as exc:
        raise UsageError(f"{flag} {text!r}: {exc}") from None
    return _Pattern(text, regex, folders_only, reach if anchored else None)


def _hits(patterns: tuple[_Pattern, ...], key: str, *, folder: bool) -> bool:
    """A pattern matches `key`, or one of the folders it lies in."""
    for pattern in patterns:
        if (folder or not pattern.folders_only) and pattern.regex.fullmatch(key):
            return True
    cut = key.rfind("/")
    return cut > 0 and _hits(patterns, key[:cut], folder=True)


def _can_reach(pattern: _Pattern, names: list[str]) -> bool:
    """Whether `pattern` can match something below the folder whose components are `names`."""
    if pattern.parts is None:
        return True
    for i, name in enumerate(names):
        if i >= len(pattern.parts):
            return False
        part = pattern.parts[i]
        if part is None:
            return True
        if not part.fullmatch(name):
            return False
    return len(pattern.parts) > len(names)


def _path_regex(parts: list[str]) -> str:
    # `**/**` is `**`: collapsed, so that a trailing one never follows another
    parts = [p for i, p in enumerate(parts) if not (p == "**" and i and parts[i - 1] == "**")]
    out = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part != "**":
            out += _component(part) + ("" if last else "/")
        elif not last:
            out += "(?:.*/)?"  # any number of folders, none included
        else:
            out = out[:-1] + "(?:/.*)?" if out else ".*"  # the folder itself or anything in it
    return out


def _component(glob: str) -> str:
    """One path component's glob as a regular expression (`/` never matches)."""
    out, i = "", 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "\\" and i + 1 < len(glob):
            i += 1
            out += re.escape(glob[i])
        elif char == "[" and (end := _class_end(glob, i)) > 0:
            inner = glob[i + 1 : end]
            negate = inner[:1] in ("!", "^")
            inner = inner[1:] if negate else inner
            members = "".join("\\" + c if c in "\\[]&~|^" else c for c in inner)
            out += "[" + ("^/" if negate else "") + members + "]"
            i = end
        elif char == "{" and (end := glob.find("}", i)) > 0:
            choices = glob[i + 1 : end].split(",")
            out += "(?:" + "|".join(_component(c) for c in choices) + ")"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return out


def _class_end(glob: str, start: int) -> int:
    """The index of the `]` closing the set that opens at `start`, or -1 (then `[` is literal)."""
    i = start + 1
    if glob[i : i + 1] in ("!", "^"):
        i += 1
    if glob[i : i + 1] == "]":  # a `]` first in the set is a member
        i += 1
    return glob.find("]", i)
