"""What one input's outcome looks like: its status and its record in the run report.

Light on purpose (no Pillow, no Dask): the report, the CLI and the throughput page import it.
No `from __future__ import annotations` here: `Record`'s optional keys are found from its
annotations at run time (`REPORT_FIELDS` in the report).
"""

from typing import NotRequired, TypedDict

#: Every input ends in exactly one of these.
STATUSES = ("ok", "skipped", "failed")


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
    resumed: NotRequired[bool]  # already written by an earlier attempt of this same run
    fatal: NotRequired[str]  # the output storage is unusable (disk full, read-only): stop the run
    abandoned: NotRequired[bool]  # timed out: a thread still runs it (the worker is replaced)
