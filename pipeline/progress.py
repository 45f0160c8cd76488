"""Progress while a run goes: a redrawn bar on a terminal, plain lines in logs.

A terminal gets a one-line bar on stderr, redrawn a few times a second. Where stdout is not a
terminal (docker compose, Kubernetes, SLURM, a file) a bar would be a mess of carriage
returns, so a plain line goes to stdout every `every` seconds instead: done/total, images/s and
the time left, which is what someone reading such a log needs.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Counts(Protocol):
    """What the progress display reads (a RunReport)."""

    @property
    def total(self) -> int: ...
    @property
    def discovered(self) -> int: ...
    @property
    def images_per_second(self) -> float: ...
    @property
    def counts(self) -> dict[str, int]: ...


class Progress:
    """Feeds a bar (when stderr is a terminal) and timed lines (when stdout is not)."""

    def __init__(
        self,
        *,
        quiet: bool,
        every: float,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.bar = not quiet and self.stderr.isatty()
        self.every = every if not quiet and not self.stdout.isatty() else 0.0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._logged = self.started

    def update(self, report: Counts) -> None:
        now = time.monotonic()
        if self.bar and now - self._drawn >= 0.2:
            self._drawn = now
            self.stderr.write("\r" + bar_line(report))
            self.stderr.flush()
        if self.every and now - self._logged >= self.every:
            self._logged = now
            print(log_line(report, now - self.started), file=self.stdout, flush=True)

    def close(self) -> None:
        if self.bar and self._drawn:
            self.stderr.write("\n")


def bar_line(report: Counts, width: int = 30) -> str:
    done, total = report.total, report.discovered
    filled = int(width * done / total) if total else 0
    c = report.counts
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
        f"ok {c['ok']} skip {c['skipped']} fail {c['failed']} "
        f"{report.images_per_second:6.1f} img/s {_eta(report)}"
    )


def log_line(report: Counts, elapsed: float) -> str:
    done, total = report.total, report.discovered
    share = f" ({100 * done // total}%)" if total else ""
    c = report.counts
    eta = _eta(report) or "ETA -"
    return (
        f"progress: {done}/{total} images{share}, {c['ok']} ok, {c['skipped']} skipped, "
        f"{c['failed']} failed, {report.images_per_second:.1f} images/s, {eta}, "
        f"{elapsed:.0f} s elapsed"
    )


def _eta(report: Counts) -> str:
    """The time left at the current rate; discovery may still add inputs to the total."""
    rate, left = report.images_per_second, report.discovered - report.total
    if rate <= 0 or left <= 0:
        return ""
    seconds = round(left / rate)
    return f"ETA {seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"ETA {seconds} s"
