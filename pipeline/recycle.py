"""Replace a worker process that holds a thread stuck on an image past its time limit.

A thread cannot be stopped from outside, so an image that times out leaves its decode running:
its CPU and memory stay in use until it ends by itself, if ever. The partition that saw the
timeout finishes its other images; then, once the client has collected its records (the task's
result is released), the worker retires from the scheduler (its other results move to other
workers, its queued tasks go elsewhere without counting against them) and closes its process;
the Nanny starts a fresh one. Workers without a Nanny (`dask worker --no-nanny`) cannot be
restarted, so they are left running and the thread runs to its end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

logger = logging.getLogger("pipeline")
RELEASE_WAIT = 600.0  # seconds to wait for the client to collect the records before retiring
REASON = "pipeline: an image timed out and its thread cannot be stopped"


def replace_this_worker() -> bool:
    """From inside a task: replace this worker process once the task's result is released.

    Returns False when not on a Dask worker with a Nanny (nothing is scheduled then).
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not running inside a Dask task (a direct call)
        return False
    if not worker.nanny:
        logger.warning("%s; no nanny to restart worker %s", REASON, worker.address)
        return False
    key = worker.get_current_task()
    worker.loop.add_callback(_retire_when_released, worker, key)
    return True


async def _retire_when_released(worker: Any, key: Any) -> None:
    deadline = time.monotonic() + RELEASE_WAIT
    while key in worker.state.tasks and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if worker.status.name != "running":  # already closing (another timeout got here first)
        return
    logger.warning("%s; restarting worker %s", REASON, worker.address)
    await worker.scheduler.retire_workers(
        workers=[worker.address],
        close_workers=False,
        remove=True,
        stimulus_id=f"pipeline-timeout-{time.time()}",
    )
    await worker.close(nanny=False, executor_wait=False, reason=REASON)
