"""The two kinds of failure: a run that cannot start, and an image that cannot be made.

A `UsageError` is raised before any work fans out (bad option, missing folder, unreachable
scheduler) and becomes exit status 2 with one line on stderr. An `ImageError` is per image: it
carries a short human reason that goes into the report, and the run goes on.
"""

from __future__ import annotations


class UsageError(Exception):
    """The run cannot start; str() is the one-line message shown to the user."""


class ImageError(Exception):
    """One input cannot be turned into an output; str() is the short reason for the report."""


def describe(exc: BaseException) -> str:
    """A short, human, single-line reason for any exception raised while handling one image."""
    if isinstance(exc, ImageError):
        text = str(exc)
    elif isinstance(exc, MemoryError):
        text = "out of memory while decoding"
    elif isinstance(exc, OSError) and exc.strerror:
        name = f": {exc.filename}" if exc.filename else ""
        text = f"{exc.strerror}{name}"
    else:
        detail = str(exc).strip()
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return " ".join(text.split())[:300]
