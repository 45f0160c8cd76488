"""Web-ready JPEGs from folders of images, at scale, on Dask.

Architecture (data flows one way):
    cli | notebook -> config -> discover -> runner -> task -> transform
- config.py     frozen Settings/RunOptions; flag > env var > default; validated up front
- discover.py   streams the input tree folder by folder; output names; collisions made unique
- runner.py     drives the run on Dask: bags in waves, streamed results, poisonous images
                isolated; cluster.py connects to (or starts) the cluster it runs on
- task.py       one partition: read -> transform -> atomic write -> record; never raises
- transform.py  pure: encoded bytes + Settings -> JPEG bytes + facts (Pillow; jpeg.py: the
                reduced-scale JPEG decode, libjpeg-turbo through simplejpeg)
- storage.py    local folders or fsspec URLs; outputs.py: atomic writes, up-to-date marker
- telemetry.py  what tasks tell Dask; tuning.py: worker set-up for image work
- dashboard/    the /throughput page on the scheduler's dashboard (a SchedulerPlugin)
- report.py     the run report; record.py: one input's outcome; samples.py: sample images
Importing this package does no work: Dask workers re-import it whenever they restart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import RunOptions, Settings
from pipeline.errors import ImageError, UsageError

if TYPE_CHECKING:
    from pipeline.report import RunReport

__all__ = ["ImageError", "RunOptions", "Settings", "UsageError", "rerun", "run"]
__version__ = "0.1.0"


def run(
    input: str | Path,
    output: str | Path,
    *,
    max_size: int = Settings.max_size,
    quality: int = Settings.quality,
    max_pixels: int = Settings.max_pixels,
    background: tuple[int, int, int] = Settings.background,
    overwrite: bool = False,
    timeout: float = RunOptions.timeout,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    only: Collection[str] | None = None,
    progress: Callable[[RunReport], None] | None = None,
) -> RunReport:
    """Make a web-ready JPEG of every image under `input`, mirrored under `output`.

    Runs on `client` when given (reuse one in a notebook: no cluster start per run), else on
    the scheduler at `scheduler`, else on a new local cluster of `workers` processes.
    `only` limits the run to these input paths (relative to `input`); `progress` is called
    with the report as results arrive. Returns the run report; failed images are records in
    it, never exceptions. A bad setting or an unusable folder raises `UsageError`.
    """
    from pipeline.runner import run_pipeline

    settings = Settings(
        max_size=max_size, quality=quality, max_pixels=max_pixels, background=background
    )
    opts = RunOptions(
        input=Path(input),
        output=Path(output),
        settings=settings,
        scheduler=scheduler,
        workers=workers,
        overwrite=overwrite,
        timeout=timeout,
    )
    return run_pipeline(opts, client=client, only=only, progress=progress)


def rerun(
    report: RunReport,
    *,
    failed_only: bool = True,
    client: Any = None,
    progress: Callable[[RunReport], None] | None = None,
    **changes: Any,
) -> RunReport:
    """Run again what `report` ran: only its failed inputs (default), or everything.

    Keyword `changes` override settings or options (`max_size=640, quality=70`,
    `overwrite=True`); changed output settings make every output be redone.
    """
    from dataclasses import fields, replace

    from pipeline.runner import run_pipeline

    if report.options is None:
        raise UsageError("this report has no run options to repeat")
    setting_names = {f.name for f in fields(Settings)}
    settings = replace(
        report.options.settings, **{k: v for k, v in changes.items() if k in setting_names}
    )
    opts = replace(
        report.options,
        settings=settings,
        **{k: v for k, v in changes.items() if k not in setting_names},
    )
    only = report.failed_inputs if failed_only else None
    return run_pipeline(opts, client=client, only=only, progress=progress)
