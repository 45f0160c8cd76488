"""Run the jobs on Dask: connect or create a cluster, submit bags in waves, stream results.

Discovery is streamed into partitions (guided self-scheduling: large while discovery is far
ahead, then largest files first, shrinking to single images at the end); each is submitted as
a one-partition `dask.bag` with a falling priority, a few per worker thread in flight, so the
graph stays small however many inputs there are, the first images start while discovery goes
on, and partitions run in the order they were formed. Results come back per partition and
are folded into the report.

The cluster may grow or shrink during a run (`cluster.adapt()`, workers started by hand, a
batch queue): the worker threads are re-read from the scheduler as results arrive (`capacity`),
and work in flight follows them, so a worker that joins gets work within one wave, and an
adaptive deployment always sees queued work to scale up for. A cluster with no workers gets
the first wave anyway (an adaptive one only starts workers for queued work); the run waits
`connect_timeout` seconds for a worker before it gives up with a `UsageError`.

A partition whose worker died too often (`KilledWorker`: an image that crashes its process
every time) is split into one-image partitions, so only the guilty image is lost, and it is
reported as failed.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice
from typing import Any

from pipeline.capacity import ClusterThreads
from pipeline.cluster import connected
from pipeline.config import RunOptions
from pipeline.discover import Job, Naming, iter_jobs
from pipeline.events import RUN_TOPIC
from pipeline.report import RunReport
from pipeline.storage import check_locations
from pipeline.task import (
    Record,
    TaskContext,
    failed_record,
    process_partition,
    written_by_run,
)

MAX_PARTITION = 256  # images per task at most: small enough to balance, large enough to be cheap
PARTITIONS_PER_THREAD = 4  # once the rest is known: a partition is 1/(threads x 4) of it
LOOKAHEAD = 4096  # inputs discovered ahead of the partition being formed
IN_FLIGHT_PER_THREAD = 3  # partitions submitted but unfinished, per worker thread
WORKER_DIED = "worker died while processing this image"

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
    on_finish: Callable[[Any], None] | None = None,
    only: Collection[str] | None = None,
) -> RunReport:
    """Process every input under `opts.input`; return the report (also on Ctrl-C).

    `only`, when given, limits the run to these inputs (paths relative to `opts.input`), named
    exactly as in a full run: this is how a notebook re-runs just the failed files.
    `on_connect(client)` runs once the throughput page is registered (after the first images
    are sent);
    `on_finish(client)` after the last result, while the cluster is still up.
    """
    check_locations(opts.input, opts.output)
    report = report or RunReport(run_id=uuid.uuid4().hex[:12])
    report.options = opts
    started = time.perf_counter()
    ctx = TaskContext.for_run(opts, report.run_id)
    flights: dict[str, _Flight] = {}
    with connected(opts, client) as dask_client:
        report.dashboard_link = str(getattr(dask_client, "dashboard_link", "") or "")
        _log_run(dask_client, report, "started")
        pages = _Once(partial(_show_pages, dask_client, report, on_connect))
        try:
            with _performance_report(opts):
                _execute(dask_client, opts, ctx, report, progress, started, only, flights, pages)
            pages()  # a run with nothing to do
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            report.seconds = time.perf_counter() - started
            with contextlib.suppress(Exception):
                _log_run(dask_client, report, "finished")
        if on_finish is not None:
            on_finish(dask_client)
    if report.interrupted:  # the cluster is down (or our tasks cancelled): look at the disk
        for flight in flights.values():
            report.add(r for r in map(partial(written_by_run, ctx=ctx), flight.jobs) if r)
    return report


def _execute(
    client: Any,
    opts: RunOptions,
    ctx: TaskContext,
    report: RunReport,
    progress: Progress | None,
    started: float,
    only: Collection[str] | None,
    flights: dict[str, _Flight],
    after_wave: Callable[[], None] = lambda: None,
) -> None:
    threads = ClusterThreads(client, patience=opts.connect_timeout)
    found = iter_jobs(
        opts.input,
        opts.output,
        naming=Naming.of(opts.settings),
        include=opts.include,
        exclude=opts.exclude,
    )
    if only is not None:
        wanted = set(only)
        found = (job for job in found if job.input in wanted)
    partitions = _partitions(_counted(found, report, client), threads)
    driver = _Driver(client, ctx, report, flights, lambda: _tick(report, progress, started))
    driver.after_wave = after_wave
    try:
        suspects = driver.drive(partitions, limit=lambda: threads.usable() * IN_FLIGHT_PER_THREAD)
        # Images whose partition kept killing workers: now each runs alone, so a death can
        # only be its own fault (a queued neighbour on a dying worker is counted too).
        driver.drive(iter([[job] for job in suspects]), limit=lambda: 1, quarantine=True)
    except BaseException:
        client.cancel([f.future for f in flights.values()])
        raise
    if report.stopped is not None:
        reason = f"not processed: {report.stopped}"
        for jobs in chain(driver.queue, partitions, [suspects]):
            report.add(failed_record(job, reason) for job in jobs)


def _tick(report: RunReport, progress: Progress | None, started: float) -> None:
    report.seconds = time.perf_counter() - started
    if progress is not None:
        progress(report)


class _Driver:
    """Keeps up to `limit` partitions in flight and folds their results into the report."""

    def __init__(
        self,
        client: Any,
        ctx: TaskContext,
        report: RunReport,
        flights: dict[str, _Flight],
        tick: Callable[[], None],
    ) -> None:
        self.client, self.ctx, self.report, self.flights, self.tick = (
            client, ctx, report, flights, tick
        )  # fmt: skip
        self.queue: list[list[Job]] = []  # split partitions, before new ones
        self.submitted = 0  # partitions submitted so far: the next one's priority is minus this
        self.after_wave: Callable[[], None] = lambda: None  # after each submitted wave

    def drive(
        self,
        partitions: Iterator[list[Job]],
        *,
        limit: Callable[[], int],
        quarantine: bool = False,
    ) -> list[Job]:
        """Run `partitions` to the end; return the images suspected of killing workers.

        `limit()` is how many partitions may be in flight now; it is asked before each wave.
        """
        from distributed import wait

        suspects: list[Job] = []
        while True:
            room = limit() - len(self.flights)
            if room > 0 and self.report.stopped is None:
                wave = self.queue[:room] or list(islice(partitions, room))
                del self.queue[: len(wave) if self.queue else 0]
                _submit(self.client, wave, self.ctx, self.flights, self.submitted)
                self.submitted += len(wave)
                if wave:
                    self.after_wave()
            if not self.flights:
                return suspects
            for future in _wait_some(wait, [f.future for f in self.flights.values()]):
                suspects.extend(self._collect(self.flights.pop(future.key), quarantine))
                future.release()
            self.tick()

    def _collect(self, flight: _Flight, quarantine: bool) -> list[Job]:
        from concurrent.futures import CancelledError

        from distributed.scheduler import KilledWorker

        try:
            # waits if the result was lost with a dead worker and is being computed again
            records = flight.future.result()
        except KilledWorker:
            if len(flight.jobs) > 1:
                self.queue.extend([job] for job in flight.jobs)  # isolate the guilty image
                return []
            if not quarantine:
                return flight.jobs
            reason = WORKER_DIED
        except (Exception, CancelledError) as exc:
            reason = f"task failed: {exc!r}"[:300]
        else:
            self.report.add(records)
            return []
        self.report.add(failed_record(job, reason) for job in flight.jobs)
        return []


def _wait_some(wait: Callable[..., Any], futures: list[Any]) -> list[Any]:
    """The futures that finish within half a second (distributed's wait raises on timeout)."""
    try:
        done, _ = wait(futures, timeout=0.5, return_when="FIRST_COMPLETED")
    except TimeoutError:
        return []
    return list(done)


def _submit(
    client: Any,
    wave: Sequence[list[Job]],
    ctx: TaskContext,
    flights: dict[str, _Flight],
    first: int = 0,
) -> None:
    """Submit each partition as a one-partition bag, the n-th of the run with priority -n.

    The priorities make partitions start in the order they were formed: the large ones first,
    the single-image tail last. Partitions submitted together as one graph run in whatever order
    the scheduler picks, and a large one left for the end keeps one worker busy while the others
    have nothing to do.
    """
    import dask.bag as db

    for n, jobs in enumerate(wave, start=first):
        bag = db.from_sequence([jobs], partition_size=1).map_partitions(_run_partition, ctx)
        (future,) = client.compute(bag.to_delayed(), priority=-n)
        flights[future.key] = _Flight(jobs=jobs, future=future)


def _run_partition(parts: Sequence[list[Job]], ctx: TaskContext) -> list[Record]:
    """The bag's partition holds one list of jobs; process it."""
    return process_partition(chain.from_iterable(parts), ctx)


def _partitions(jobs: Iterator[Job], threads: Callable[[], int]) -> Iterator[list[Job]]:
    """Group jobs into partitions by guided self-scheduling.

    While discovery still has more than LOOKAHEAD inputs ahead, a partition is MAX_PARTITION
    images. Once the rest of the input is known, it is put in order of file size, largest
    first, and each partition takes 1/(threads x PARTITIONS_PER_THREAD) of what is left, so
    the sizes shrink to single images at the very end, and those are the smallest files: no
    worker idles while another finishes a long partition or one big image, for a run of 200
    images as for the tail of a run of millions. `threads()` is the cluster's now.
    """
    ahead: deque[Job] = deque()
    more = True
    while True:
        if more:
            want = LOOKAHEAD - len(ahead)
            before = len(ahead)
            ahead.extend(islice(jobs, want))
            more = len(ahead) - before == want
            if not more:  # the rest is known: largest first (sorted is stable: ties keep order)
                ahead = deque(sorted(ahead, key=lambda job: -job.size))
        if not ahead:
            return
        share = math.ceil(len(ahead) / (threads() * PARTITIONS_PER_THREAD))
        size = MAX_PARTITION if more else min(MAX_PARTITION, share)
        yield [ahead.popleft() for _ in range(min(size, len(ahead)))]


def _counted(jobs: Iterator[Job], report: RunReport, client: Any) -> Iterator[Job]:
    """Count jobs as discovery yields them; tell the dashboard the total once it is known."""
    for job in jobs:
        report.discovered += 1
        yield job
    _log_run(client, report, "discovered")


class _Once:
    """Calls `fn` the first time it is called; later calls do nothing."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn: Callable[[], None] | None = fn

    def __call__(self) -> None:
        fn, self.fn = self.fn, None
        if fn is not None:
            fn()


def _show_pages(client: Any, report: RunReport, on_connect: Callable[[Any], None] | None) -> None:
    """The throughput page; then `on_connect`."""
    report.throughput_link = _register_dashboard(client)
    if on_connect is not None:
        on_connect(client)


def _register_dashboard(client: Any) -> str:
    """Mount the throughput page; its URL, or "" (no dashboard, or the scheduler refused)."""
    from pipeline import dashboard

    try:
        return dashboard.register(client)
    except Exception as exc:  # the run matters more than the page: say so and go on
        print(f"pipeline: warning: throughput page not available: {exc}", file=sys.stderr)
        return ""


def _performance_report(opts: RunOptions) -> contextlib.AbstractContextManager[Any]:
    if opts.performance_report is None:
        return contextlib.nullcontext()
    from distributed import performance_report

    return performance_report(filename=str(opts.performance_report))


def _log_run(client: Any, report: RunReport, state: str) -> None:
    client.log_event(
        RUN_TOPIC,
        {"run": report.run_id, "state": state, "total": report.discovered, "t": time.time()},
    )
