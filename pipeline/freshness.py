"""Which outputs of an input are up to date: one marker per output, checked one by one.

An input has one output per size and format (`discover.Naming`). Each output's marker names its
own settings (size, format, that format's quality: `Settings.fingerprint`) and the exact source,
so a run that adds a size or a format finds the outputs it already has up to date and makes
only the new ones; an output whose marker differs is made again.
"""

from __future__ import annotations

from pipeline import outputs
from pipeline.config import Settings
from pipeline.discover import Naming, Output
from pipeline.errors import ImageError
from pipeline.record import Output as OutputRecord
from pipeline.storage import Store

FOREIGN = "kept a file the pipeline did not write at the output path"


def marks(first: str, settings: Settings, size: int, version: str) -> dict[Output, bytes]:
    """Each output of the input whose first output is `first`, and its marker when up to date.

    `size` and `version` identify the source (`Store.identity`).
    """
    return {
        out: outputs.marker(settings.fingerprint(out.size, out.format), size, version)
        for out in Naming.of(settings).outputs(first)
    }


def outdated(
    target: Store, wanted: dict[Output, bytes], *, run_id: str, started_ns: int, overwrite: bool
) -> tuple[list[Output], list[Output]]:
    """(the outputs to write, the others that an earlier attempt of this run already wrote).

    An output written by this same run (an earlier attempt) is never redone; with `overwrite`
    every other one is. A file at an output path that the pipeline did not write fails the
    input, before anything is written, unless `overwrite`.
    """
    todo: list[Output] = []
    ours: list[Output] = []
    for out, mark in wanted.items():
        exists, found = target.inspect(out.path)
        if found == mark:
            if target.written_by(out.path, run_id, started_ns):
                ours.append(out)
                continue
            if not overwrite:
                continue
        elif exists and found is None and not overwrite:
            raise ImageError(f"{FOREIGN}: {out.path} (--overwrite replaces it)")
        todo.append(out)
    return todo, ours


def entry(out: Output, written: bool) -> OutputRecord:
    """The report's entry for one output; its dimensions and bytes are filled in once made."""
    return OutputRecord(
        path=out.path, format=out.format, size=out.size, width=None, height=None, bytes=None,
        status="written" if written else "skipped",
    )  # fmt: skip
