"""How much work a run keeps in flight: the cluster's worker threads as they are now.

Clusters change during a run (`cluster.adapt()`, workers started by hand or by a batch queue,
`retire_workers`). The runner asks `ClusterThreads` before each wave; it re-reads the
scheduler's thread count at most once per THREADS_REFRESH seconds (one small RPC), so a worker
that joins gets work within a wave, while a run of millions of inputs does not ask the
scheduler on every result.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from pipeline.errors import UsageError

THREADS_REFRESH = 1.0  # seconds between two reads of the cluster's worker threads


class ClusterThreads:
    """The cluster's worker threads, read from the scheduler at most once per THREADS_REFRESH.

    With no workers, the run waits for one: it says so once on stderr, and raises a
    `UsageError` when none has come for `patience` seconds (at the start, or after the last
    one left).
    """

    def __init__(self, client: Any, *, patience: float) -> None:
        self.client, self.patience = client, patience
        self.count = 0
        self.read_at = -math.inf
        self.empty_since: float | None = None

    def usable(self) -> int:
        """The current worker threads, at least 1: the first wave goes out before any worker."""
        now = time.monotonic()
        if now - self.read_at >= THREADS_REFRESH:
            self.read_at = now
            self.count = sum(self.client.nthreads().values())
            self._check_empty(now)
        return max(1, self.count)

    __call__ = usable

    def _check_empty(self, now: float) -> None:
        if self.count > 0:
            self.empty_since = None
            return
        address = getattr(self.client.scheduler, "address", "the scheduler")
        if self.empty_since is None:
            self.empty_since = now
            print(
                f"pipeline: waiting for workers to join {address} "
                f"(up to {self.patience:g} s, --connect-timeout)",
                file=sys.stderr,
                flush=True,
            )
        elif now - self.empty_since > self.patience:
            raise UsageError(
                f"no workers joined the Dask scheduler at {address} within {self.patience:g} s; "
                f"start some (dask worker {address}) or wait longer with --connect-timeout"
            )
