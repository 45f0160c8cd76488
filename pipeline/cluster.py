"""Connect to a Dask cluster: the caller's client, an existing scheduler, or a new local one.

A local cluster is one single-threaded worker process per core (so "per core" means per worker
thread), bound to 127.0.0.1, with a memory cap fit for image work and worker tuning applied.
The CLI, which runs one cluster per process, first calls `prestart_local_workers`: the workers'
modules are imported by a fork server while the CLI imports Dask and starts the scheduler, and
each worker (and any restarted one) is then forked from it, warm. The scheduler's Bokeh pages
are mounted when someone first asks for one (`_PagesOnDemand`).
An existing scheduler is reached within `--connect-timeout`, with TLS from flags or Dask's own
config; an unreachable one, or one without workers, is a UsageError (exit 2).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from pipeline import tuning
from pipeline.config import RunOptions
from pipeline.errors import UsageError

logger = logging.getLogger(__name__)

#: What a local worker imports, done once in the fork server instead of in every worker:
#: Dask's worker side, the CLI module a child re-imports as its main module, the image work.
WORKER_MODULES = (
    "distributed",
    "distributed.nanny",
    "distributed.worker",
    "pipeline.cli",
    "pipeline.task",
    "pipeline.transform",
    "PIL.JpegImagePlugin",
    "PIL.PngImagePlugin",
)
#: distributed's defaults for these variables in `distributed.nanny.pre-spawn-environ` (a test
#: checks that they still are): given to the fork server, whose preload loads numpy.
SERVER_ENVIRON = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
MP_METHOD = "distributed.worker.multiprocessing-method"
FORK_SERVER_STOP_WAIT = 5.0  # seconds
MEMORY_LIMIT_CAP = 4 << 30  # per local worker: ample for a 100 MP image, bounded for bombs
LOCAL_ALLOWED_FAILURES = 2  # worker deaths before a local task counts as poisonous


@contextlib.contextmanager
def connected(opts: RunOptions, client: Any) -> Iterator[Any]:
    """Yield a Client: the caller's, one connected to `opts.scheduler`, or a new local cluster."""
    if client is not None:
        yield client
        return
    if opts.scheduler:
        with _remote_client(opts) as remote:
            yield remote
        return
    with _local_client(opts) as local:
        yield local


@contextlib.contextmanager
def _remote_client(opts: RunOptions) -> Iterator[Any]:
    from distributed import Client

    try:
        client = Client(opts.scheduler, timeout=opts.connect_timeout, security=_security(opts))
    except Exception as exc:  # OSError, TimeoutError, and TLS set-up errors of any type
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(f"cannot reach Dask scheduler at {opts.scheduler}: {reason}") from None
    try:
        yield client
    finally:
        client.close()


def _security(opts: RunOptions) -> Any:
    """TLS from --tls-* flags; otherwise Dask's own config (distributed.comm.tls.*) applies."""
    from distributed.security import Security

    if opts.tls is None:
        return Security()
    key = str(opts.tls.key) if opts.tls.key else None
    return Security(
        tls_ca_file=str(opts.tls.ca_file),
        tls_client_cert=str(opts.tls.cert),
        tls_client_key=key,
        require_encryption=True,
    )


def _wait_for_workers(client: Any, opts: RunOptions) -> None:
    try:
        client.wait_for_workers(1, timeout=opts.connect_timeout)
    except TimeoutError:
        raise UsageError(
            f"Dask scheduler at {opts.scheduler} has no workers "
            f"(waited {opts.connect_timeout:g} s); start some with: dask worker {opts.scheduler}"
        ) from None


_prestarted: list[bool] = []  # [True] once prestart_local_workers() has started the server


def prestart_local_workers() -> None:
    """Start the process local workers will be forked from, now, importing their modules.

    For a process that starts one local cluster and then exits (the CLI), called before it
    imports Dask: the server's imports then run alongside the CLI's own and the scheduler's
    start-up, so the workers are forked the moment the scheduler can take them, and a restarted
    worker in milliseconds. glibc reads its MALLOC_* variables once, when a process starts, so
    `tuning.MALLOC_ENVIRON` is set now; the thread-count variables are set as the Nanny sets them
    by default (SERVER_ENVIRON), since the preload loads numpy. The rest of the Nanny's
    pre-spawn environment is applied when the cluster starts (`_use_fork_server`). Does nothing
    where the platform has no fork server; a server left unused (Dask configured for another
    start method) is stopped with the cluster.
    """
    import multiprocessing
    from multiprocessing import forkserver

    if _prestarted or "forkserver" not in multiprocessing.get_all_start_methods():
        return
    os.environ.update(tuning.MALLOC_ENVIRON)
    os.environ.update(SERVER_ENVIRON)
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(WORKER_MODULES))
    forkserver.ensure_running()
    _prestarted.append(True)


def _use_fork_server() -> bool:
    """Whether the workers come from the prestarted server; if so, the environment is set.

    The Nanny's pre-spawn environment (with `tuning.local_config()`) goes into os.environ, as
    the Nanny would set it before spawning, so the Nanny hands the same to each worker.
    """
    import dask
    import distributed.utils

    if not _prestarted:
        return False
    with dask.config.set(tuning.local_config()):
        if dask.config.get(MP_METHOD) != "spawn":
            return False
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    for name, value in environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)
    # On its first "forkserver" context Dask imports numpy, pandas and lz4 into this process
    # (~0.2 s, on the way to the first worker) only to name them as the server's preload, which
    # is too late to matter: the server is already running with ours. Tell it so.
    distributed.utils._forkserver_preload_set = True
    return True


@contextlib.contextmanager
def _local_client(opts: RunOptions) -> Iterator[Any]:
    import dask
    from distributed import Client, LocalCluster

    workers = opts.workers or os.cpu_count() or 1
    forked = _use_fork_server()
    with (
        contextlib.ExitStack() as after,  # first in, so its callback runs after the close
        dask.config.set(
            {
                "distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES,
                # one task per single-threaded worker: a dying worker takes no queued neighbour
                "distributed.scheduler.worker-saturation": 1.0,
                **tuning.local_config(),
                **({MP_METHOD: "forkserver"} if forked else {}),
            }
        ),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:8787",
            # the Bokeh pages come on the first request for one: see `_pages_on_demand`
            scheduler_kwargs={"dashboard": False},
            memory_limit=_local_memory_limit(workers),
        ) as cluster,
        Client(cluster) as client,
    ):
        if _prestarted:
            after.callback(_stop_fork_server)
        _pages_on_demand(client)
        yield client


def _pages_on_demand(client: Any) -> None:
    """Have the local scheduler mount Dask's Bokeh dashboard on the first request for a page.

    The scheduler starts with its HTTP server (health, metrics, and the link) but without the
    Bokeh pages: importing bokeh and building them takes ~0.5 s of CPU, which a run on a machine
    whose every core runs a worker would take from the images, watched or not. This puts
    `_PagesOnDemand` in their place.
    """
    try:
        client.run_on_scheduler(_stand_in_for_pages)
    except Exception as exc:  # the run matters more than the pages: say so and go on
        print(f"pipeline: warning: Dask dashboard not available: {exc}", file=sys.stderr)


def _stand_in_for_pages(dask_scheduler: Any = None) -> None:
    dask_scheduler.http_application.add_application(_PagesOnDemand(dask_scheduler))


class _PagesOnDemand:
    """Holds the place of Dask's Bokeh pages in a scheduler's HTTP routing until one is asked for.

    distributed's RoutingApplication asks each added application in turn for a handler of a
    request its own routes do not serve (/health, /metrics and the like they do). The first such
    request mounts the pages (on the scheduler's event loop, which it holds for ~0.5 s once),
    then whatever waited for them (`call_when_mounted`: the throughput page), and is routed again.
    """

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.mounted = False
        self._waiting: list[Callable[[], None]] = []

    def call_when_mounted(self, fn: Callable[[], None]) -> None:
        if self.mounted:
            fn()
        else:
            self._waiting.append(fn)

    def find_handler(self, request: Any, **kwargs: Any) -> Any:
        if self.mounted:
            return None
        self.mounted = True
        try:
            _mount_bokeh_pages(self.scheduler)
        except Exception:  # the scheduler serves on without its pages
            logger.exception("Could not mount the Dask dashboard")
            return None
        waiting, self._waiting = self._waiting, []
        for fn in waiting:
            fn()
        return self.scheduler.http_application.find_handler(request, **kwargs)


def _mount_bokeh_pages(dask_scheduler: Any) -> None:
    import distributed.dashboard.scheduler as pages

    apps = dask_scheduler.http_application.applications
    if not any("/status" in getattr(app, "app_paths", ()) for app in apps):
        pages.connect(dask_scheduler.http_application, dask_scheduler.http_server, dask_scheduler)


def _stop_fork_server() -> None:
    """Once its cluster is closed: end the fork server and wait (a few seconds at most) for it.

    So no process of the run outlives it, and the CPU of the workers (reaped by the server) is
    counted in this process's children, like that of spawned workers. The server has nothing
    left to do (its workers are gone and reaped with the cluster), so it gets SIGTERM, which
    ends it at once; on its own it would exit only after this process closes its "alive" pipe,
    and then tear down every module it imported (~0.15 s, which every run waited for). Uses
    the helper CPython's own tests stop a fork server with, which closes that pipe and reaps
    the server; without it, the server ends when this process does.
    """
    import signal
    import threading
    from multiprocessing import forkserver

    _prestarted.clear()
    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is None:
        return
    pid = getattr(server, "_forkserver_pid", None)
    if isinstance(pid, int):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)

    def quietly() -> None:
        with contextlib.suppress(OSError):
            stop()
        _stop_resource_tracker()

    waiter = threading.Thread(target=quietly, name="pipeline-stop-fork-server", daemon=True)
    waiter.start()
    waiter.join(timeout=FORK_SERVER_STOP_WAIT)


def _stop_resource_tracker() -> None:
    """End multiprocessing's resource tracker too, and reap it, rather than leave it to exit
    after this process (it does, on the end of its pipe) as an orphan for init to reap."""
    from multiprocessing import resource_tracker

    stop = getattr(getattr(resource_tracker, "_resource_tracker", None), "_stop", None)
    if stop is not None:
        with contextlib.suppress(OSError):
            stop()


def _local_memory_limit(workers: int) -> int:
    from distributed.system import MEMORY_LIMIT

    return int(min(MEMORY_LIMIT / workers, MEMORY_LIMIT_CAP))
