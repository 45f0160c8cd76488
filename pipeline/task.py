"""The unit of work Dask maps over a partition: read -> transform -> atomic writes -> record.

`process_partition` handles its images one by one and never raises for an image: every
failure becomes a record with a short reason. It returns small records, never pixels.
Each input has one output per size and format (`discover.Naming`); each output is checked on
its own (its marker names its own size, format and quality), and only the outputs that are not
up to date are encoded and written, each atomically, from one decode of the input.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from pipeline import freshness, recycle, telemetry
from pipeline.config import DEFAULT_TIMEOUT, RunOptions, Settings
from pipeline.discover import Job
from pipeline.errors import ImageError, describe
from pipeline.record import Record as Record  # what a task returns, one per input
from pipeline.storage import Store
from pipeline.transform import Transformed, transform

MAX_INPUT_BYTES = 1 << 30  # larger files are refused before they are read
#: Write errors that will fail every later image too: the run stops instead of grinding on.
FATAL_WRITE_ERRORS = {
    errno.ENOSPC: "output disk full",
    errno.EDQUOT: "output disk quota exceeded",
    errno.EROFS: "output file system is read-only",
}
R = TypeVar("R")


class TimedOut(ImageError):
    """An image passed its time limit; its thread could not be stopped and runs on."""


@dataclass(frozen=True)
class TaskContext:
    """Everything a partition needs besides its jobs; the same for every partition of a run."""

    input_root: str  # normalised roots (`Store.at(...).root`): absolute paths or URLs
    output_root: str
    settings: Settings
    run_id: str
    started_ns: int  # the run's start (time.time_ns()), for stores that cannot keep the run id
    overwrite: bool = False
    timeout: float = DEFAULT_TIMEOUT
    follow_symlinks: bool = False  # read input links that lead outside the input folder

    @classmethod
    def for_run(cls, opts: RunOptions, run_id: str) -> TaskContext:
        """The context of a run of `opts` starting now."""
        return cls(
            input_root=Store.at(opts.input).root,
            output_root=Store.at(opts.output).root,
            settings=opts.settings,
            run_id=run_id,
            started_ns=time.time_ns(),
            overwrite=opts.overwrite,
            timeout=opts.timeout,
            follow_symlinks=opts.follow_symlinks,
        )

    @property
    def source(self) -> Store:
        # already normalised: no path resolution per image
        return Store.at(self.input_root, confined=not self.follow_symlinks)

    @property
    def target(self) -> Store:
        return Store.at(self.output_root)


def process_partition(jobs: Iterable[Job], ctx: TaskContext) -> list[Record]:
    """Process each job of a partition in turn; one record per job, in order."""
    reporter = telemetry.BatchReporter(ctx.run_id)
    records: list[Record] = []
    fatal: str | None = None
    try:
        for job in jobs:
            if fatal is not None:
                records.append(failed_record(job, f"not processed: {fatal}"))
                continue
            record = process_job(job, ctx)
            records.append(record)
            fatal = record.get("fatal")
            if not record.get("resumed"):
                reporter.add(
                    record["status"],
                    bytes_read=record["bytes_read"],
                    bytes_written=record["bytes_written"],
                    seconds=record["seconds"],
                    outputs=record["outputs"],
                )
    finally:
        reporter.flush()
        if any(r.get("abandoned") for r in records):
            recycle.replace_this_worker()
    telemetry.record_images(len(records))
    return records


def process_job(job: Job, ctx: TaskContext) -> Record:
    """Turn one input into its output, or into a failure record. Never raises."""
    started = time.perf_counter()
    record = _record(job)
    try:
        _run(job, ctx, record)
    except Exception as exc:
        record["status"], record["error"], record["output"] = "failed", describe(exc), None
        record["outputs"] = record["outputs"] or None  # those complete on disk (`_run`)
        if isinstance(exc, TimedOut):
            record["abandoned"] = True
        if isinstance(exc, OSError) and exc.errno in FATAL_WRITE_ERRORS:
            record["fatal"] = FATAL_WRITE_ERRORS[exc.errno]
    record["seconds"] = round(time.perf_counter() - started, 6)
    return record


def _run(job: Job, ctx: TaskContext, record: Record) -> None:
    source, target = ctx.source, ctx.target
    size, version = source.identity(job.input)
    marks = freshness.marks(job.output, ctx.settings, size, version)
    todo, ours = freshness.outdated(
        target, marks, run_id=ctx.run_id, started_ns=ctx.started_ns, overwrite=ctx.overwrite
    )
    entries = [freshness.entry(out, out in todo or out in ours) for out in marks]
    unwritten = {out.path for out in todo}
    # until the last write is done, the record lists only the outputs complete on disk
    record["outputs"] = [e for e in entries if e["path"] not in unwritten]
    if not todo:
        record["status"] = "ok" if ours else "skipped"
        if ours:
            record["resumed"] = True
        return
    if size > MAX_INPUT_BYTES:
        raise ImageError(f"file too large ({size >> 20} MiB > {MAX_INPUT_BYTES >> 20} MiB)")
    wanted = {(out.size, out.format): marks[out] for out in todo}
    result = _with_timeout(
        lambda: _read_and_transform(source, job.input, ctx.settings, wanted), ctx.timeout
    )
    record["warnings"] = list(result.warnings)
    record["bytes_read"] = size
    dims = result.dimensions or {}
    done = {(r.size, r.format): r for r in result.renditions}
    for entry in entries:
        entry["width"], entry["height"] = dims.get(entry["size"], (None, None))
        made = done.get((entry["size"], entry["format"]))  # None: not written by this attempt
        entry["bytes"] = None if made is None else len(made.data)
    write_started = time.perf_counter()
    for out in todo:
        data = done[out.size, out.format].data
        _write(target, out.path, data, marks[out], ctx.run_id)
        unwritten.discard(out.path)
        record["outputs"] = [e for e in entries if e["path"] not in unwritten]
        record["bytes_written"] += len(data)
    telemetry.record_stages(dict(result.timings, write=time.perf_counter() - write_started))
    record["status"] = "ok"
    record["width"], record["height"] = dims.get(ctx.settings.largest, (None, None))


def _write(target: Store, rel: str, data: bytes, mark: bytes, run_id: str) -> None:
    try:
        target.write(rel, data, mark, run_id)
    except OSError as exc:
        cause = FATAL_WRITE_ERRORS.get(exc.errno or 0) or exc.strerror or type(exc).__name__
        raise OSError(exc.errno, f"cannot write output ({cause})", target.url(rel)) from exc


def written_by_run(job: Job, ctx: TaskContext) -> Record | None:
    """The ok record of a job whose outputs this run already wrote, else None.

    Used after an interrupt to report what in-flight partitions finished before they stopped:
    every output up to date, at least one of them written by this run.
    """
    source, target = ctx.source, ctx.target
    try:
        size, version = source.identity(job.input)
    except OSError:
        return None
    marks = freshness.marks(job.output, ctx.settings, size, version)
    if any(target.read_marker(out.path) != mark for out, mark in marks.items()):
        return None
    ours = [out for out in marks if target.written_by(out.path, ctx.run_id, ctx.started_ns)]
    if not ours:
        return None
    record = _record(job)
    record["status"], record["bytes_read"] = "ok", size
    record["outputs"] = [freshness.entry(out, out in ours) for out in marks]
    return record


def failed_record(job: Job, reason: str) -> Record:
    """The record of an input that failed (or was not attempted) for `reason`."""
    record = _record(job)
    record["output"], record["error"] = None, reason
    return record


def _read_and_transform(
    source: Store, name: str, settings: Settings, markers: dict[tuple[int, str], bytes]
) -> Transformed:
    return transform(source.read(name), settings, markers=markers)


def _with_timeout(fn: Callable[[], R], timeout: float) -> R:
    """Run fn in a helper thread; give up after `timeout` seconds (the thread is abandoned)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="pipeline-image", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimedOut(f"timed out after {timeout:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _record(job: Job) -> Record:
    return Record(
        input=job.input,
        output=job.output,
        status="failed",
        error=None,
        note=job.note,
        bytes_read=0,
        bytes_written=0,
        seconds=0.0,
        width=None,
        height=None,
        outputs=None,
        warnings=[],
    )
