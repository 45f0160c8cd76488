"""The local cluster a run starts when it is given no other: only its owner gets in.

One single-threaded worker process per core (so "per core" means per worker thread), bound to
127.0.0.1. Scheduler, workers and client talk TLS with a key and certificate made for this
cluster and held only in memory (credentials.py): a client without them, even one of the same
user on the same machine, is refused before it can send anything, so nobody else can run code
in the workers (and read their environment, where cloud credentials live) while a run or a
`--keep-alive` dashboard is up. The dashboard is Dask's own, served over plain HTTP on
127.0.0.1 (:8787, or a free port when that one is taken) from the start; its Bokeh pages (and
the throughput page) are mounted by the first request to them, as importing Bokeh would
otherwise delay the first images (`plumbing.defer_pages`).
Workers get the image-work tuning (`tuning.local_config()`, through the Nanny's pre-spawn
environment) and a memory cap fit for image work; the CLI's are forked from a warm process
(forkserver.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

from pipeline import tuning
from pipeline.cluster import forkserver
from pipeline.config import RunOptions

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
DASHBOARD_ADDRESS = f"{HOST}:8787"
MEMORY_LIMIT_CAP = 4 << 30  # per local worker: ample for a 100 MP image, bounded for bombs
LOCAL_ALLOWED_FAILURES = 2  # worker deaths before a local task counts as poisonous
HEARTBEAT_DRAIN = 5.0  # seconds a worker waits at most for its last heartbeat's reply


@contextlib.contextmanager
def local_client(opts: RunOptions) -> Iterator[Any]:
    """Start a local cluster of `opts.workers` (default: one per core), yield a client of it,
    and close both when done."""
    import dask
    from distributed import Client

    workers = opts.workers or os.cpu_count() or 1
    with (
        dask.config.set(local_config()),  # for the workers, and any restarted later
        _start_cluster(workers, opts.log_level) as cluster,
        Client(cluster) as client,
    ):
        client.run_on_scheduler(_defer_pages)
        try:
            yield client
        finally:
            quiet_heartbeats(client)


def _start_cluster(workers: int, log_level: str | None) -> Any:
    from distributed import LocalCluster

    from pipeline.cluster.credentials import run_security

    with warnings.catch_warnings():
        # When :8787 is taken (another cluster's), Dask serves the dashboard on a free port and
        # warns; the run prints the link it got, so the warning only adds noise.
        warnings.filterwarnings("ignore", r"Port \d+ is already in use", UserWarning)
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host=HOST,
            dashboard_address=DASHBOARD_ADDRESS,
            scheduler_kwargs={"dashboard": False},  # its pages: at the first request (below)
            security=run_security(),
            memory_limit=local_memory_limit(workers),
            # Dask's messages at the level -v/--log-level asked for (LocalCluster: warnings)
            silence_logs=logging.getLevelName(log_level) if log_level else logging.WARNING,
        )


def _defer_pages(dask_scheduler: Any) -> None:
    """On the scheduler: serve Dask's Bokeh pages (and the throughput page) from the first
    request on, so that importing Bokeh does not delay the first images."""
    from pipeline.dashboard import plumbing

    try:
        plumbing.defer_pages(dask_scheduler)
    except plumbing.PlumbingError:  # loud: the dashboard would show no page at all
        logger.exception("Dask's dashboard pages are not served")


def quiet_heartbeats(client: Any) -> None:
    """Stop the workers' heartbeats, and let the last one get its reply, before they close.

    A worker closing (as `LocalCluster.close` has it do, before the scheduler closes) shuts
    its connections while a heartbeat may still wait for the scheduler's reply, and logs that
    as an ERROR with two tracebacks: on a busy machine, after a run that went well. A
    heartbeat sent after the scheduler retired the worker gets a WARNING each side. With the
    heartbeats stopped first, the close finds none in flight and none comes late.
    """
    with contextlib.suppress(Exception):  # a cluster going down anyway: nothing to quieten
        client.run(_drain_heartbeat)


async def _drain_heartbeat(dask_worker: Any) -> None:
    """In a worker: stop the heartbeat, then wait (HEARTBEAT_DRAIN s at most) for the reply to
    the one in flight, if any. An idle worker's only call to the scheduler is its heartbeat, so
    once its connection pool has no call open, none is in flight."""
    dask_worker.periodic_callbacks["heartbeat"].stop()
    deadline = time.monotonic() + HEARTBEAT_DRAIN
    while dask_worker.rpc.active and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def local_config() -> dict[str, Any]:
    """Dask config in force while a local cluster runs (its workers and any restarted one)."""
    return {
        "distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES,
        # one task per single-threaded worker: a dying worker takes no queued neighbour
        "distributed.scheduler.worker-saturation": 1.0,
        **tuning.local_config(),
        **forkserver.config(),
    }


def local_memory_limit(workers: int) -> int:
    """Memory limit per worker: an even share of the machine's, at most MEMORY_LIMIT_CAP."""
    from distributed.system import MEMORY_LIMIT

    return int(min(MEMORY_LIMIT / workers, MEMORY_LIMIT_CAP))
