"""What one input's outcome looks like: its status, its outputs and its record in the run report.

Light on purpose (no Pillow, no Dask): the report, the CLI and the throughput page import it.
No `from __future__ import annotations` here: `Record`'s optional keys are found from its
annotations at run time (`REPORT_FIELDS` in the report).
"""

from typing import NotRequired, TypedDict

#: Every input ends in exactly one of these.
STATUSES = ("ok", "skipped", "failed")


class Output(TypedDict):
    """One output file of an input (one size in one format), as the report lists it."""

    path: str  # relative to the output folder
    format: str  # jpeg | webp | avif
    size: int  # the size asked for (--sizes); `width`/`height` are what it came to
    width: int | None  # None when it was up to date and left alone
    height: int | None
    bytes: int | None  # None when this attempt did not write it (up to date, or an earlier one's)
    status: str  # "written" or "skipped" (up to date)


class Record(TypedDict):
    """The outcome for one input, as it appears in the run report."""

    input: str
    output: str | None
    status: str  # one of STATUSES
    error: str | None
    note: str | None
    bytes_read: int
    bytes_written: int
    seconds: float
    width: int | None
    height: int | None
    # every output of the input (`output` is the first); of a failed input, those complete on disk
    outputs: list[Output] | None
    warnings: list[str]  # what was ignored or left out but did not fail it (a broken profile...)
    resumed: NotRequired[bool]  # already written by an earlier attempt of this same run
    fatal: NotRequired[str]  # the output storage is unusable (disk full, read-only): stop the run
    abandoned: NotRequired[bool]  # timed out: a thread still runs it (the worker is replaced)
