"""The run report on disk: spooled per-file records read back lazily, and the run's options.

A run over millions of inputs keeps its records in an unlinked temporary file (one JSON object
a line) rather than in memory; `SpooledRecords` reads them back in order each time it is
iterated, so a notebook can look at them, or make a DataFrame, without the run holding them.
The options are written into the JSON report (its "run" section) so that a report loaded with
`RunReport.from_json` can be re-run: locations, settings and how the run was executed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipeline.config import RunOptions, Settings, TLSFiles
from pipeline.storage import as_location, is_url

CHUNK = 1 << 20  # bytes read at a time from the spool


class SpooledRecords:
    """The records of a spooled report, in the order they arrived; iterable many times."""

    def __init__(self, fd: int, flush: Callable[[], None], count: Callable[[], int]) -> None:
        self._fd, self._flush, self._count = fd, flush, count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # pread leaves the file position alone: the run may go on appending while we read
        self._flush()
        offset, rest = 0, b""
        while chunk := os.pread(self._fd, CHUNK, offset):
            offset += len(chunk)
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                yield json.loads(line)
        if rest.strip():
            yield json.loads(rest)

    def __len__(self) -> int:
        return self._count()

    def __bool__(self) -> bool:
        return self._count() > 0

    def __repr__(self) -> str:
        return f"<{len(self)} spooled records>"


def options_to_json(opts: RunOptions) -> dict[str, Any]:
    """The run's options as JSON; URLs lose any user:password part (it stays in env/config)."""
    out: dict[str, Any] = {}
    for f in fields(RunOptions):
        value = getattr(opts, f.name)
        if isinstance(value, Settings):
            value = {s.name: getattr(value, s.name) for s in fields(Settings)}
        elif isinstance(value, TLSFiles):
            value = {t.name: _text(getattr(value, t.name)) for t in fields(TLSFiles)}
        else:
            value = _text(value)
        out[f.name] = value
    return out


def options_from_json(data: dict[str, Any]) -> RunOptions:
    """RunOptions from `options_to_json`'s output; unknown names are ignored."""
    known = {f.name for f in fields(RunOptions)}
    kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in known and v is not None}
    for name in ("input", "output"):
        if name in kwargs:
            kwargs[name] = as_location(kwargs[name])
    for name in ("report", "performance_report", "scheduler_file"):
        if isinstance(kwargs.get(name), str) and not is_url(kwargs[name]):
            kwargs[name] = Path(kwargs[name])
    if "settings" in kwargs:
        settings = dict(kwargs["settings"])
        if "background" in settings:
            settings["background"] = tuple(settings["background"])
        kwargs["settings"] = Settings(**settings)
    if "tls" in kwargs:
        tls = kwargs["tls"]
        kwargs["tls"] = TLSFiles(
            ca_file=Path(tls["ca_file"]),
            cert=Path(tls["cert"]),
            key=Path(tls["key"]) if tls.get("key") else None,
        )
    return RunOptions(**kwargs)


def _text(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and is_url(value):
        parts = urlsplit(value)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return value
