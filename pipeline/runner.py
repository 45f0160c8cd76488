"""Run the jobs on Dask: connect or create a cluster, submit bags in waves, stream results.

Discovery is streamed into partitions of many images each; partitions are submitted as
`dask.bag`s a wave at a time, so the graph in flight stays small (a few partitions per worker
thread) however many inputs there are, and the first images start while discovery goes on.
Results come back per partition and are folded into the report as they arrive.

A partition whose worker died too often (`KilledWorker`: an image that crashes its process
every time) is split into one-image partitions, so only the guilty image is lost, and it is
reported as failed.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

from pipeline.config import RunOptions
from pipeline.discover import Job, iter_jobs
from pipeline.errors import UsageError
from pipeline.events import RUN_TOPIC
from pipeline.report import RunReport
from pipeline.task import Record, TaskContext, process_partition

MAX_PARTITION = 256  # images per task at most: small enough to balance, large enough to be cheap
PARTITIONS_PER_THREAD = 4  # the first wave's target when the whole input is already known
LOOKAHEAD = 4096  # inputs discovered before the first wave is sized
IN_FLIGHT_PER_THREAD = 3  # partitions submitted but unfinished, per worker thread
WORKER_DIED = "worker died while processing this image"
MEMORY_LIMIT_CAP = 4 << 30  # per local worker: ample for a 100 MP image, bounded for bombs
LOCAL_ALLOWED_FAILURES = 2  # worker deaths before a local task counts as poisonous

Progress = Callable[[RunReport], None]


@dataclass
class _Flight:
    jobs: list[Job]
    future: Any


def run_pipeline(
    opts: RunOptions,
    *,
    client: Any = None,
    report: RunReport | None = None,
    progress: Progress | None = None,
    on_connect: Callable[[Any], None] | None = None,
    only: Collection[str] | None = None,
) -> RunReport:
    """Process every input under `opts.input`; return the report (also on Ctrl-C).

    `only`, when given, limits the run to these inputs (paths relative to `opts.input`), named
    exactly as in a full run: this is how a notebook re-runs just the failed files.
    """
    _check_folders(opts)
    report = report or RunReport(run_id=uuid.uuid4().hex[:12])
    report.options = opts
    started = time.perf_counter()
    ctx = TaskContext(
        input_root=str(opts.input.resolve()),
        output_root=str(opts.output.resolve()),
        settings=opts.settings,
        run_id=report.run_id,
        started_ns=time.time_ns(),
        overwrite=opts.overwrite,
        timeout=opts.timeout,
    )
    with _connected(opts, client) as dask_client:
        report.dashboard_link = _register_dashboard(dask_client)
        if on_connect is not None:
            on_connect(dask_client)
        _log_run(dask_client, report, "started")
        try:
            _execute(dask_client, opts, ctx, report, progress, started, only)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            report.seconds = time.perf_counter() - started
            with contextlib.suppress(Exception):
                _log_run(dask_client, report, "finished")
    return report


def _execute(
    client: Any,
    opts: RunOptions,
    ctx: TaskContext,
    report: RunReport,
    progress: Progress | None,
    started: float,
    only: Collection[str] | None,
) -> None:
    from distributed import wait

    threads = max(1, _total_threads(client))
    found = iter_jobs(opts.input, opts.output)
    if only is not None:
        wanted = set(only)
        found = (job for job in found if job.input in wanted)
    jobs = _counted(found, report, client)
    partitions = _partitions(jobs, threads)
    flights: dict[str, _Flight] = {}
    retry: list[list[Job]] = []
    try:
        while True:
            room = threads * IN_FLIGHT_PER_THREAD - len(flights)
            if room > 0:
                wave = retry[:room] or list(islice(partitions, room))
                del retry[: len(wave) if retry else 0]
                _submit(client, wave, ctx, flights)
            if not flights:
                break
            done = _wait_some(wait, [f.future for f in flights.values()])
            for future in done:
                flight = flights.pop(future.key)
                retry.extend(_collect(flight, report))
                future.release()
            report.seconds = time.perf_counter() - started
            if progress is not None:
                progress(report)
    finally:
        if flights:
            client.cancel([f.future for f in flights.values()])


def _wait_some(wait: Callable[..., Any], futures: list[Any]) -> list[Any]:
    """The futures that finish within half a second (distributed's wait raises on timeout)."""
    try:
        done, _ = wait(futures, timeout=0.5, return_when="FIRST_COMPLETED")
    except TimeoutError:
        return []
    return list(done)


def _submit(
    client: Any, wave: Sequence[list[Job]], ctx: TaskContext, flights: dict[str, _Flight]
) -> None:
    """Submit partitions as one bag: one task per partition, one future per task."""
    if not wave:
        return
    import dask.bag as db

    bag = db.from_sequence(list(wave), partition_size=1).map_partitions(_run_partition, ctx)
    futures = client.compute(bag.to_delayed())
    for jobs, future in zip(wave, futures, strict=True):
        flights[future.key] = _Flight(jobs=jobs, future=future)


def _run_partition(parts: Sequence[list[Job]], ctx: TaskContext) -> list[Record]:
    """The bag's partition holds one list of jobs; process it."""
    return process_partition(chain.from_iterable(parts), ctx)


def _collect(flight: _Flight, report: RunReport) -> list[list[Job]]:
    """Fold a finished partition into the report; return partitions to retry."""
    from distributed.scheduler import KilledWorker

    future = flight.future
    if future.status == "finished":
        report.add(future.result())
        return []
    exc = future.exception()
    if isinstance(exc, KilledWorker) and len(flight.jobs) > 1:
        return [[job] for job in flight.jobs]  # isolate the image that kills its worker
    reason = WORKER_DIED if isinstance(exc, KilledWorker) else f"task failed: {exc!r}"[:300]
    report.add(_failed(job, reason) for job in flight.jobs)
    return []


def _failed(job: Job, reason: str) -> Record:
    return Record(
        input=job.input,
        output=None,
        status="failed",
        error=reason,
        note=job.note,
        bytes_read=0,
        bytes_written=0,
        seconds=0.0,
        width=None,
        height=None,
    )


def _partitions(jobs: Iterator[Job], threads: int) -> Iterator[list[Job]]:
    """Group jobs into partitions: sized to spread a small run over all threads, capped."""
    head = list(islice(jobs, LOOKAHEAD))
    if len(head) < LOOKAHEAD:
        size = max(1, min(MAX_PARTITION, math.ceil(len(head) / (threads * PARTITIONS_PER_THREAD))))
    else:
        size = MAX_PARTITION
    stream = chain(head, jobs)
    while chunk := list(islice(stream, size)):
        yield chunk


def _counted(jobs: Iterator[Job], report: RunReport, client: Any) -> Iterator[Job]:
    """Count jobs as discovery yields them; tell the dashboard the total once it is known."""
    for job in jobs:
        report.discovered += 1
        yield job
    _log_run(client, report, "discovered")


def _check_folders(opts: RunOptions) -> None:
    if not opts.input.is_dir():
        raise UsageError(f"input folder not found: {opts.input}")
    try:
        opts.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {opts.output}: {exc.strerror}") from None
    if not os.access(opts.output, os.W_OK | os.X_OK):
        raise UsageError(f"output folder is not writable: {opts.output}")


@contextlib.contextmanager
def _connected(opts: RunOptions, client: Any) -> Iterator[Any]:
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
        client = Client(opts.scheduler, timeout=opts.connect_timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(f"cannot reach Dask scheduler at {opts.scheduler}: {reason}") from None
    try:
        _wait_for_workers(client, opts)
        yield client
    finally:
        client.close()


def _wait_for_workers(client: Any, opts: RunOptions) -> None:
    try:
        client.wait_for_workers(1, timeout=opts.connect_timeout)
    except TimeoutError:
        raise UsageError(
            f"Dask scheduler at {opts.scheduler} has no workers "
            f"(waited {opts.connect_timeout:g} s); start some with: dask worker {opts.scheduler}"
        ) from None


@contextlib.contextmanager
def _local_client(opts: RunOptions) -> Iterator[Any]:
    import dask
    from distributed import Client, LocalCluster

    workers = opts.workers or os.cpu_count() or 1
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES}),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:8787",
            memory_limit=_local_memory_limit(workers),
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _local_memory_limit(workers: int) -> int:
    from distributed.system import MEMORY_LIMIT

    return int(min(MEMORY_LIMIT / workers, MEMORY_LIMIT_CAP))


def _total_threads(client: Any) -> int:
    info = client.scheduler_info()
    return sum(w["nthreads"] for w in info.get("workers", {}).values())


def _register_dashboard(client: Any) -> str:
    link = str(getattr(client, "dashboard_link", "") or "")
    try:
        from pipeline import dashboard
    except ImportError:
        return link
    try:
        return dashboard.register(client) or link
    except Exception:
        return link


def _log_run(client: Any, report: RunReport, state: str) -> None:
    client.log_event(
        RUN_TOPIC,
        {"run": report.run_id, "state": state, "total": report.discovered, "t": time.time()},
    )
