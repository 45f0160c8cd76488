"""`pipeline.bag`: the run as a lazy `dask.bag.Bag` of records, for composing with other work.

The input folder is listed when the bag is made (the file list is the bag's sequence, so its
length and partitions are known); the images are read, resized and written only when the bag
is computed, one partition per task, each image an atomic write with its up-to-date marker as
in `run()`. The records are the report's rows (`input`, `output`, `status`, `error`, ...).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import DEFAULT_TIMEOUT, RunOptions, Settings

if TYPE_CHECKING:
    from dask.bag import Bag

    from pipeline.discover import Job
    from pipeline.task import TaskContext

TASKS_WANTED = 100  # partitions of a bag without partition_size: enough to spread, few to track
MAX_PARTITION = 256  # images per partition at most (as the runner's partitions)


def records_bag(
    input: str | Path,
    output: str | Path,
    *,
    overwrite: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    partition_size: int | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    **settings: Any,
) -> Bag:
    """A Bag of records, one per input image under `input` (see `pipeline.bag`)."""
    import dask.bag as db

    from pipeline import select
    from pipeline.config import parse_background
    from pipeline.discover import Naming, iter_jobs
    from pipeline.storage import check_locations
    from pipeline.task import TaskContext

    check_locations(input, output)
    if isinstance(settings.get("background"), str):
        settings["background"] = parse_background(settings["background"])
    opts = RunOptions(
        input=input, output=output, settings=Settings(**settings), overwrite=overwrite,
        timeout=timeout, include=select.check(include, "--include"),
        exclude=select.check(exclude, "--exclude"),
    )  # fmt: skip
    ctx = TaskContext.for_run(opts, uuid.uuid4().hex[:12])
    jobs = list(
        iter_jobs(
            input,
            output,
            naming=Naming.of(opts.settings),
            include=opts.include,
            exclude=opts.exclude,
        )
    )
    size = partition_size or min(MAX_PARTITION, max(1, math.ceil(len(jobs) / TASKS_WANTED)))
    records: Bag = db.from_sequence(jobs, partition_size=size).map_partitions(_process, ctx)
    return records


def _process(jobs: list[Job], ctx: TaskContext) -> list[dict[str, Any]]:
    """The report's fields of each record: the same columns in every partition."""
    from pipeline.report import REPORT_FIELDS
    from pipeline.task import process_partition

    return [{k: r.get(k) for k in REPORT_FIELDS} for r in process_partition(jobs, ctx)]
