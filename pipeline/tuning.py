"""Worker set-up for image work: what the runner applies to local and remote workers.

`local_config()` is Dask config set around a LocalCluster the pipeline starts; `register(client)`
prepares workers the pipeline did not start (a remote cluster), whose environment is not ours.

Why: a Dask Nanny starts its worker with MALLOC_TRIM_THRESHOLD_=65536. Setting any glibc malloc
threshold switches off glibc's dynamic mmap threshold, so every buffer over 128 KiB (each decoded
image, each 16 MiB block of Pillow's arena, each input file read) is mmap'ed, page-faulted in and
unmapped again, which costs a sizeable share of the throughput (docs/performance.md has the
measurements behind every setting here). glibc's own dynamic thresholds still let memory go:
buffers over 32 MiB (a progressive JPEG's coefficients, 2 bytes per pixel: 48 MiB of
luma for a 24 MP photo) are always mmap'ed, and the heaps of an image thread's arena are
unmapped when they empty. So local workers start with MALLOC_ENVIRON: one arena that keeps up
to 128 MiB of freed memory (see there); workers that have the Nanny's variable (a remote
cluster's) get Pillow's block cache instead, through Pillow's documented PILLOW_BLOCKS_MAX
variable, which Pillow reads once, when `PIL.Image` is first imported in a process.
Nothing here does any work at import time.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

#: Freed 16 MiB blocks Pillow keeps for reuse in a worker whose malloc trims (Pillow's default
#: is 0). A 24 MP JPEG drafted to 1/2 scale needs two, the resample's intermediate one more; the
#: cap bounds what an idle worker holds at PIL_BLOCKS_MAX x 16 MiB.
PIL_BLOCKS_MAX = 8
BLOCKS_VARIABLE = "PILLOW_BLOCKS_MAX"
TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
#: glibc malloc for local workers (read once, when a process starts): every thread in the main
#: arena, and up to 128 MiB, freed memory is kept for the next image rather than handed back
#: and faulted in again; allocations above it are still mmap'ed and unmapped when freed.
MALLOC_ENVIRON = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(128 << 20),
    TRIM_VARIABLE: str(128 << 20),
}
#: Samplers that interrupt the image thread of every local worker: the statistical profiler
#: (a stack walk every 10 ms, for the dashboard's /profile page) and the GIL monitor; the
#: pipeline's own throughput page and the task stream do not use them.
QUIET_WORKERS = (
    "distributed.worker.profile.enabled",
    "distributed.admin.system-monitor.gil.enabled",
)
#: Every Dask server (scheduler, each Nanny, each worker) wakes every `tick.interval` (20 ms) to
#: measure how late its event loop runs. On a machine whose every core runs a worker, that CPU
#: comes out of the images. A blocked loop is still reported (after 3 s).
TICK = ("distributed.admin.tick.interval", "500ms")
#: Other timers of every server: the system monitor (CPU, memory, network counters for the
#: dashboard's System page) every 500 ms, and the worker's and its Nanny's memory check every
#: 100 ms, slowed as below. A worker over its memory limit is still paused or restarted
#: within 250 ms.
SLOWER_TIMERS = {
    "distributed.admin.system-monitor.interval": "1s",
    "distributed.worker.memory.monitor-interval": "250ms",
}
PLUGIN_NAME = "pipeline-image-tuning"


def local_config() -> dict[str, Any]:
    """Dask config for a LocalCluster started by the pipeline.

    The Nanny gives its workers MALLOC_ENVIRON (in place of its own trim threshold); the
    samplers in QUIET_WORKERS are switched off, and the event-loop TICK and the SLOWER_TIMERS
    run less often.
    """
    return {
        **{f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in MALLOC_ENVIRON.items()},
        **dict.fromkeys(QUIET_WORKERS, False),
        TICK[0]: TICK[1],
        **SLOWER_TIMERS,
    }


def worker_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a process that local workers are forked from must start with.

    MALLOC_ENVIRON, where `environ` does not set a variable itself (the precedence a Nanny
    gives pre-spawn-environ), and PILLOW_BLOCKS_MAX when the malloc that results trims early:
    forked workers inherit both, and Pillow may be imported before the worker plugin runs.
    """
    chosen = {name: environ.get(name, value) for name, value in MALLOC_ENVIRON.items()}
    if _trims_early(chosen) and _blocks_variable(environ) < PIL_BLOCKS_MAX:
        chosen[BLOCKS_VARIABLE] = str(PIL_BLOCKS_MAX)
    return chosen


def register(client: Any) -> None:
    """Prepare the client's workers for image work (idempotent).

    The plugin runs in each worker process, now and on every worker that joins or restarts
    later. A cluster that refuses it (e.g. a worker without this package) still runs the job,
    only slower: the reason is printed as a warning.
    """
    try:
        client.register_plugin(_plugin_class()(), name=PLUGIN_NAME)
    except Exception as exc:  # the run matters more than the tuning
        print(f"pipeline: warning: worker tuning not applied: {exc}", file=sys.stderr)


def apply_in_process(blocks_max: int = PIL_BLOCKS_MAX) -> dict[str, int | bool]:
    """Apply the image-work settings to the current process; return what is now in effect.

    Only a process whose malloc was told to trim early (the variable is read once, at start)
    needs Pillow's block cache; elsewhere glibc already reuses the memory, and the cache only
    adds RSS. Pillow takes PILLOW_BLOCKS_MAX when `PIL.Image` is first imported, so in a
    process that imported it already this changes nothing and says so ("applied": False);
    such workers can be started with the variable set (`PILLOW_BLOCKS_MAX=8 dask worker ...`).
    A larger value already set is kept.
    """
    wanted = blocks_max if _trims_early() else 0
    current = _blocks_variable()
    if wanted <= current:
        return {"pil_blocks_max": current, "applied": True}
    if "PIL.Image" in sys.modules:
        return {"pil_blocks_max": current, "applied": False}
    os.environ[BLOCKS_VARIABLE] = str(wanted)
    return {"pil_blocks_max": wanted, "applied": True}


def _blocks_variable(environ: Mapping[str, str] = os.environ) -> int:
    value = environ.get(BLOCKS_VARIABLE, "")
    return int(value) if value.isdigit() else 0


def _trims_early(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a process with `environ` (this one's by default: the variable is read once, at
    start) trims freed memory below our threshold (as with the Nanny's 65536)."""
    value = environ.get(TRIM_VARIABLE)
    if value is None:
        return False
    return not value.isdigit() or int(value) < int(MALLOC_ENVIRON[TRIM_VARIABLE])


def _plugin_class() -> type:
    """The WorkerPlugin class, built on first use so that importing this module stays cheap."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class ImageWorkerTuning(WorkerPlugin):
        """Runs `apply_in_process` in the worker process."""

        idempotent = True
        name = PLUGIN_NAME

        def setup(self, worker: Any) -> None:
            if not apply_in_process()["applied"]:
                logger.warning(
                    "Pillow was imported before the pipeline's worker set-up: set %s=%d in this"
                    " worker's environment for its block cache",
                    BLOCKS_VARIABLE,
                    PIL_BLOCKS_MAX,
                )

    return ImageWorkerTuning
