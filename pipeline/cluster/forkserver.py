"""Local workers forked from a warm process, started before the CLI's own imports.

A worker spawned fresh (Dask's default) spends ~0.4 s of CPU importing distributed and the
pipeline before it takes its first image, and on a machine whose every core runs a worker those
imports delay the images. Meanwhile the CLI process imports distributed and starts the scheduler
on one core, while the other waits.

`start()` launches multiprocessing's fork server at once, with the modules a worker needs
preloaded (`PRELOAD`), so those imports run on the idle core while the CLI starts the scheduler;
the local cluster's Nannies then fork each worker from it
(`distributed.worker.multiprocessing-method: forkserver`), ready in a few milliseconds. The
server starts with the local workers' malloc environment (`tuning.worker_environ`): glibc reads
it once, when a process starts, and forked workers inherit the server's. One cost remains: the
first time a Nanny uses the fork server, distributed imports the packages it would preload
there itself (pandas among them, ~0.15 s) in the CLI process; no public setting avoids it.

Only the command line does this. multiprocessing has no public way to stop the server: it lives
until the process that started it ends, which for the CLI is the run, but in a notebook would be
the kernel's whole life. `run()` called from Python spawns its workers, as Dask does by default.
Nothing here does any work at import time.
"""

from __future__ import annotations

import os

from pipeline import tuning

#: What every local worker imports before its first image: Dask's worker, the runner's task
#: function and, through it, the per-image code; the JPEG decoder's bindings; Pillow's plugins
#: for the formats a run reads (without them, the first Image.open imports every plugin Pillow
#: has, ~50 ms). A module that is not installed is skipped.
PRELOAD = (
    "distributed",
    "pipeline.runner",
    "pipeline.task",  # the transform and its decoders, encoders and metadata policy
    "simplejpeg",
    *(f"PIL.{name}ImagePlugin" for name in ("Jpeg", "Png", "Bmp", "Gif", "Ppm", "Tiff", "WebP")),
    "PIL.AvifImagePlugin",
    "pillow_heif",  # HEIC inputs, when the heif extra is installed (a missing one is skipped)
)
METHOD_KEY = "distributed.worker.multiprocessing-method"

_running = False  # whether this process started the fork server


def start() -> None:
    """Start the fork server with PRELOAD, now (idempotent; it preloads in the background).

    Where the platform has no fork server (Windows), nothing happens: workers are spawned.
    """
    global _running
    import multiprocessing

    if _running or "forkserver" not in multiprocessing.get_all_start_methods():
        return
    from multiprocessing import forkserver

    os.environ.update(tuning.worker_environ(os.environ))
    multiprocessing.set_forkserver_preload(list(PRELOAD))
    forkserver.ensure_running()
    _running = True


def config() -> dict[str, str]:
    """Dask config for the local cluster: fork its workers from the server if it runs."""
    return {METHOD_KEY: "forkserver"} if _running else {}
