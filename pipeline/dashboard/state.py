"""Exact per-worker counters and binned images/s, fed by the throughput plugin's events.

Pure Python and JSON-able on purpose: it runs on the scheduler (shipped there by value), and
its snapshot travels back to the client for the HTML report.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from pipeline.record import STATUSES

logger = logging.getLogger(__name__)

COUNTS = (*STATUSES, "bytes_read", "bytes_written")
MAX_BINS = 900  # per run; bins double in width when a run outgrows them
MAX_RUNS = 20  # runs kept for the page and snapshots (metrics are never pruned)


def _new_worker(nthreads: int) -> dict[str, Any]:
    return {
        "nthreads": nthreads,
        **dict.fromkeys(COUNTS, 0),
        "busy": 0.0,
        "first": None,
        "last": None,
    }


class RunStats:
    """One run: progress, per-worker totals and images (ok + failed) per time bin."""

    def __init__(self, run: str, t0: float) -> None:
        self.run = run
        self.state = "running"
        self.total: int | None = None
        self.started = t0
        self.finished: float | None = None
        self.workers: dict[str, dict[str, Any]] = {}
        self.t0 = t0
        self.bin_s = 1.0
        self.bins: dict[str, list[float]] = {}
        self.outputs: dict[str, dict[str, int]] = {}  # "<format> <size>" -> files, bytes

    def add_batch(
        self, worker: str, nthreads: int, counts: dict[str, int], t: float, busy: float
    ) -> None:
        totals = self.workers.setdefault(worker, _new_worker(nthreads))
        totals["nthreads"] = nthreads or totals["nthreads"]
        for key in COUNTS:
            totals[key] += counts[key]
        totals["busy"] += busy
        start = t - busy
        totals["first"] = start if totals["first"] is None else min(totals["first"], start)
        totals["last"] = t if totals["last"] is None else max(totals["last"], t)
        self._spread(worker, counts["ok"] + counts["failed"], max(start, self.t0), max(t, self.t0))

    def _spread(self, worker: str, images: int, start: float, end: float) -> None:
        """Share `images` out over the bins that [start, end] covers, by overlap."""
        while (end - self.t0) / self.bin_s >= MAX_BINS:
            self._coarsen()
        bins = self.bins.setdefault(worker, [])
        first = self._index(start)
        last = max(first, math.ceil((end - self.t0) / self.bin_s) - 1)  # end is exclusive
        bins.extend([0.0] * (last + 1 - len(bins)))
        if last == first or end <= start:
            bins[first] += images
            return
        for i in range(first, last + 1):
            lo = max(start, self.t0 + i * self.bin_s)
            hi = min(end, self.t0 + (i + 1) * self.bin_s)
            bins[i] += images * max(hi - lo, 0.0) / (end - start)

    def _index(self, t: float) -> int:
        return int((t - self.t0) // self.bin_s)

    def _coarsen(self) -> None:
        self.bin_s *= 2
        for worker, bins in self.bins.items():
            self.bins[worker] = [sum(bins[i : i + 2]) for i in range(0, len(bins), 2)]

    def to_dict(self) -> dict[str, Any]:
        done = {key: sum(w[key] for w in self.workers.values()) for key in STATUSES}
        return {
            "run": self.run,
            "state": self.state,
            "total": self.total,
            "started": self.started,
            "finished": self.finished,
            "done": sum(done.values()),
            **done,
            "workers": {addr: dict(w) for addr, w in self.workers.items()},
            "outputs": {key: dict(v) for key, v in self.outputs.items()},
            "series": {
                "t0": self.t0,
                "bin_s": self.bin_s,
                "images": {addr: list(bins) for addr, bins in self.bins.items()},
            },
        }


class ThroughputState:
    """Everything the page, the metrics and the snapshot need; fed one event at a time."""

    def __init__(self) -> None:
        self.runs: dict[str, RunStats] = {}
        self.metrics: dict[str, dict[str, int]] = {}  # worker -> cumulative counts, never pruned
        # worker -> rendition -> cumulative files, bytes; never pruned
        self.outputs: dict[str, dict[str, dict[str, int]]] = {}

    def add_batch(self, msg: dict[str, Any]) -> None:
        """Count one BatchEvent (deltas). Malformed events are logged and dropped."""
        try:
            counts = {key: int(msg.get(key) or 0) for key in COUNTS}
            worker, t = str(msg["worker"]), float(msg["t"])
            busy, nthreads = max(float(msg.get("busy") or 0.0), 0.0), int(msg.get("nthreads") or 1)
            if not (math.isfinite(t) and math.isfinite(busy)):
                raise ValueError("non-finite time")
            written = _renditions(msg)
            run = self._run(str(msg.get("run", "")), t - busy)
        except (KeyError, TypeError, ValueError, AttributeError):
            logger.warning("Dropping malformed throughput event %r", msg)
            return
        run.add_batch(worker, nthreads, counts, t, busy)
        cumulative = self.metrics.setdefault(worker, dict.fromkeys(COUNTS, 0))
        for key in COUNTS:
            cumulative[key] += counts[key]
        for table in (run.outputs, self.outputs.setdefault(worker, {})):
            for key, (files, size) in written.items():
                entry = table.setdefault(key, {"files": 0, "bytes": 0})
                entry["files"] += files
                entry["bytes"] += size

    def add_run_event(self, msg: dict[str, Any]) -> None:
        """Apply one RunEvent: started, discovered (total known) or finished."""
        try:
            t = float(msg.get("t") or time.time())
            if not math.isfinite(t):
                raise ValueError("non-finite time")
            run = self._run(str(msg["run"]), t)
            total = msg.get("total")
            run.total = int(total) if total is not None else run.total
        except (KeyError, TypeError, ValueError):
            logger.warning("Dropping malformed run event %r", msg)
            return
        if msg.get("state") == "finished":
            run.state, run.finished = "finished", t

    def _run(self, run_id: str, t: float) -> RunStats:
        if run_id not in self.runs:
            self.runs[run_id] = RunStats(run_id, t)
            for old in list(self.runs)[:-MAX_RUNS]:
                del self.runs[old]
        run = self.runs[run_id]
        if t < run.t0 and not run.bins:
            run.t0 = run.started = t
        return run

    def current(self) -> RunStats | None:
        return next(reversed(self.runs.values()), None)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able copy: every kept run plus the cumulative per-worker counters."""
        current = self.current()
        return {
            "generated": time.time(),
            "current": current.run if current else None,
            "runs": {run_id: run.to_dict() for run_id, run in self.runs.items()},
            "totals": {addr: dict(counts) for addr, counts in self.metrics.items()},
        }


def _renditions(msg: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """An event's outputs written: rendition -> (files, bytes); none from older workers."""
    files, sizes = msg.get("outputs") or {}, msg.get("output_bytes") or {}
    return {str(key): (int(n), int(sizes.get(key) or 0)) for key, n in files.items()}
