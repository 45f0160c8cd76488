"""What a task tells Dask about its work: stage timings and batched throughput events.

Stage seconds and image counts go to `distributed.metrics.context_meter`, which feeds Dask's
own Fine Performance Metrics page. Throughput goes to the scheduler as one `log_event` per
batch (about one a second per worker, and one at the end of every partition), never one per
image. Outside a Dask worker (a plain function call in a test) both are silently skipped.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.events import THROUGHPUT_TOPIC, BatchEvent, rendition_key
from pipeline.record import STATUSES

EVENT_INTERVAL = 1.0  # seconds between two throughput events of one worker


def record_stages(timings: dict[str, float]) -> None:
    """Add per-stage seconds to the running task's Fine Performance Metrics."""
    from distributed.metrics import context_meter

    for stage, seconds in timings.items():
        context_meter.digest_metric(stage, seconds, "seconds")


def record_images(count: int) -> None:
    from distributed.metrics import context_meter

    context_meter.digest_metric("images", count, "count")


class BatchReporter:
    """Accumulates per-image outcomes and sends them to the scheduler in batches."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._worker = _current_worker()
        self._last_sent = time.monotonic()
        self._reset()

    def _reset(self) -> None:
        self.counts = dict.fromkeys(STATUSES, 0)
        self.bytes_read = 0
        self.bytes_written = 0
        self.busy = 0.0
        self.outputs: dict[str, int] = {}
        self.output_bytes: dict[str, int] = {}

    def add(
        self,
        status: str,
        *,
        bytes_read: int,
        bytes_written: int,
        seconds: float,
        outputs: list[Any] | None = None,
    ) -> None:
        """Count one image; `outputs`: its record's outputs, of which the written ones count."""
        self.counts[status] += 1
        self.bytes_read += bytes_read
        self.bytes_written += bytes_written
        self.busy += seconds
        for out in outputs or ():
            if out["status"] == "written":
                key = rendition_key(out["format"], out["size"])
                self.outputs[key] = self.outputs.get(key, 0) + 1
                self.output_bytes[key] = self.output_bytes.get(key, 0) + (out["bytes"] or 0)
        if time.monotonic() - self._last_sent >= EVENT_INTERVAL:
            self.flush()

    def flush(self) -> None:
        """Send what has accumulated (if anything) and start a new batch."""
        self._last_sent = time.monotonic()
        if self._worker is None or not any(self.counts.values()):
            self._reset()
            return
        event: BatchEvent = {
            "run": self.run_id,
            "worker": self._worker.address,
            "nthreads": self._worker.state.nthreads,
            "t": time.time(),
            "ok": self.counts["ok"],
            "failed": self.counts["failed"],
            "skipped": self.counts["skipped"],
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "busy": round(self.busy, 6),
            "outputs": self.outputs,
            "output_bytes": self.output_bytes,
        }
        self._worker.log_event(THROUGHPUT_TOPIC, dict(event))
        self._reset()


def _current_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None
