"""Web-ready JPEGs (and WebP, AVIF, at several sizes) from folders of images, at scale, on Dask.

Architecture (data flows one way):
    cli | notebook -> config -> discover -> runner -> task -> transform
- config.py     frozen Settings/RunOptions; flag > env var > default; validated up front
- discover.py   streams the input tree folder by folder; output names (every size and format
                of an input); collisions made unique
- runner.py     drives the run on Dask: bags in waves sized to the cluster as it is now,
                streamed results, poisonous images isolated; cluster/ connects to (or
                starts) the cluster it runs on
- task.py       one partition: read -> transform -> atomic writes -> record; never raises;
                freshness.py: which outputs of an input are up to date (a marker each)
- transform.py  pure: encoded bytes + Settings -> every rendition's bytes + facts from one
                decode (Pillow; decode.py: open, check the pixel cap, decode; jpeg.py: the
                reduced-scale JPEG decode, libjpeg-turbo through simplejpeg; colour.py: tones,
                sRGB, alpha; encode.py: JPEG, WebP, AVIF;
                heif.py: HEIC inputs through pillow-heif; metadata.py, xmp.py: --keep-metadata)
- select.py     --include/--exclude glob patterns, applied while discover.py walks
- storage/      local folders or fsspec URLs; outputs.py: atomic writes, up-to-date marker
- telemetry.py  what tasks tell Dask; tuning.py: worker set-up for image work
- dashboard/    the /throughput page on the scheduler's dashboard (a SchedulerPlugin)
- report.py     the run report; record.py: one input's outcome; records.py: the report's
                records spooled to disk, its options as JSON
- lazy.py       `bag()`: the same work as a lazy dask.bag of records, for composition
- samples.py    generated sample images
Importing this package does no work: Dask workers re-import it whenever they restart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import RunOptions, Settings, TLSFiles
from pipeline.errors import ImageError, UsageError

if TYPE_CHECKING:
    from dask.bag import Bag

    from pipeline.report import RunReport

__all__ = [
    "ImageError",
    "RunOptions",
    "Settings",
    "TLSFiles",
    "UsageError",
    "bag",
    "rerun",
    "run",
]
__version__ = "0.1.0"


def run(
    input: str | Path,
    output: str | Path,
    *,
    max_size: int = Settings.max_size,
    quality: int = Settings.quality,
    max_pixels: int = Settings.max_pixels,
    background: tuple[int, int, int] | str = Settings.background,
    sizes: Sequence[int] | str = (),
    formats: Sequence[str] | str = Settings.formats,
    webp_quality: int = Settings.webp_quality,
    avif_quality: int = Settings.avif_quality,
    keep_metadata: str = Settings.keep_metadata,
    overwrite: bool = False,
    timeout: float = RunOptions.timeout,
    client: Any = None,
    scheduler: str | None = None,
    scheduler_file: str | Path | None = None,
    workers: int | None = None,
    connect_timeout: float = RunOptions.connect_timeout,
    tls: TLSFiles | None = None,
    report: str | Path | None = None,
    performance_report: str | Path | None = None,
    throughput_report: str | Path | None = None,
    keep_records: bool = False,
    follow_symlinks: bool = False,
    only: Collection[str] | None = None,
    progress: Callable[[RunReport], None] | None = None,
    include: Collection[str] = (),
    exclude: Collection[str] = (),
) -> RunReport:
    """Make a web-ready JPEG of every image under `input`, mirrored under `output`.

    `input` and `output` are folders or URLs (`s3://bucket/prefix`, passed to fsspec as they
    are). The cluster is, in this order: `client`; the current default client (inside
    `with Client(...):`); the scheduler at `scheduler` or in `scheduler_file`; a new local
    cluster of `workers` processes. `connect_timeout` bounds the wait for the scheduler and for
    its first worker (make it longer for clusters that start workers on demand); `tls` holds
    the client certificates for a `tls://` scheduler. `report` also writes the JSON report
    there (as the CLI's `--report`), `performance_report` Dask's HTML performance report,
    `throughput_report` the per-core throughput plot (HTML). `background` is an RGB triple or
    a colour as the CLI takes it (`white`, `#rrggbb`, `r,g,b`). `follow_symlinks` also reads
    input files whose symbolic links lead outside the input folder. `keep_metadata` is
    `none`, `copyright` or `all` (the CLI's `--keep-metadata`); `include` and `exclude` are
    glob patterns on input paths relative to `input` (`--include`, `--exclude`).

    `sizes` (`[1920, 1280, 640]` or `"1920,1280,640"`) writes every image at each size (the
    largest keeps the plain name, the others get `-<size>`; default: the one `max_size`), and
    `formats` (`["jpeg", "webp", "avif"]` or `"jpeg,webp"`) each size in each format, all
    from one decode; `quality` is JPEG's, `webp_quality` and `avif_quality` the others'.

    The per-file records are spooled to disk as they arrive (memory stays flat however many
    inputs there are) and read back from `report.records`; `keep_records=True` keeps them in
    memory instead. `only` limits the run to these input paths (relative to `input`);
    `progress` is called with the report as results arrive. Returns the run report; failed
    images are records in it, never exceptions. A bad setting or an unusable folder raises
    `UsageError`.
    """
    from pipeline import select
    from pipeline.config import parse_background
    from pipeline.storage import as_location

    if isinstance(background, str):
        background = parse_background(background)
    settings = Settings(
        max_size=max_size,
        quality=quality,
        max_pixels=max_pixels,
        background=background,
        sizes=tuple(sizes) if not isinstance(sizes, str) else sizes,  # type: ignore[arg-type]
        formats=tuple(formats) if not isinstance(formats, str) else formats,  # type: ignore[arg-type]
        webp_quality=webp_quality,
        avif_quality=avif_quality,
        keep_metadata=keep_metadata,
    )
    opts = RunOptions(
        input=as_location(input),
        output=as_location(output),
        settings=settings,
        scheduler=scheduler,
        workers=workers,
        overwrite=overwrite,
        report=None if report is None else Path(report),
        timeout=timeout,
        connect_timeout=connect_timeout,
        tls=tls,
        performance_report=None if performance_report is None else Path(performance_report),
        follow_symlinks=follow_symlinks,
        scheduler_file=None if scheduler_file is None else Path(scheduler_file),
        include=select.check(include, "--include"),
        exclude=select.check(exclude, "--exclude"),
    )
    return _run(
        opts,
        client=client,
        only=only,
        progress=progress,
        keep_records=keep_records,
        throughput_report=None if throughput_report is None else Path(throughput_report),
    )


def rerun(
    report: RunReport | str | Path,
    *,
    failed_only: bool = True,
    client: Any = None,
    progress: Callable[[RunReport], None] | None = None,
    **changes: Any,
) -> RunReport:
    """Run again what `report` ran: only its failed inputs (default), or everything.

    `report` is a RunReport or the path of a JSON report (the CLI's `--report`). Keyword
    `changes` override settings or options (`max_size=640, quality=70`, `overwrite=True`);
    changed output settings make every output be redone. The new JSON report is written only
    where `report=` says (the first run's report is left as it is).
    """
    from dataclasses import fields, replace

    from pipeline.report import RunReport

    if not isinstance(report, RunReport):
        report = RunReport.from_json(report)
    if report.options is None:
        raise UsageError("this report has no run options to repeat")
    changes.setdefault("report", None)
    if isinstance(changes["report"], str):
        changes["report"] = Path(changes["report"])
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
    return _run(opts, client=client, only=only, progress=progress)


def bag(input: str | Path, output: str | Path, **kwargs: Any) -> Bag:
    """A lazy `dask.bag.Bag` of run records: resize-and-save mapped over the input files.

    Nothing is processed until it is computed: `.filter()`, `.to_dataframe()`,
    `dask.compute()` it with other work, watch it with `distributed.progress`. Keywords: the
    settings (`max_size`, `quality`, `max_pixels`, `background`, `sizes`, `formats`,
    `webp_quality`, `avif_quality`, `keep_metadata`, as `run()` takes them), `overwrite`,
    `timeout`, `partition_size` (images per task), `include`/`exclude` (glob patterns on input
    paths). For a large run on a cluster use `run()`, which
    streams the work in waves, follows the cluster as it grows, and isolates poisonous images.
    """
    from pipeline.lazy import records_bag
    from pipeline.storage import as_location

    return records_bag(as_location(input), as_location(output), **kwargs)


def _run(
    opts: RunOptions,
    *,
    client: Any,
    only: Collection[str] | None,
    progress: Callable[[RunReport], None] | None,
    keep_records: bool = False,
    throughput_report: Path | None = None,
) -> RunReport:
    """Run with the records spooled beside the JSON report (or in the temporary folder)."""
    import tempfile
    import uuid
    from functools import partial

    from pipeline.report import RunReport
    from pipeline.runner import run_pipeline

    spool_dir = opts.report.parent if opts.report is not None else Path(tempfile.gettempdir())
    spool_dir.mkdir(parents=True, exist_ok=True)
    report = RunReport(
        run_id=uuid.uuid4().hex[:12],
        keep_records=keep_records,
        spool_dir=None if keep_records else spool_dir,
    )
    run_pipeline(
        opts,
        client=client,
        report=report,
        only=only,
        progress=progress,
        on_finish=None if throughput_report is None else partial(_save, report, throughput_report),
    )
    if opts.report is not None:
        report.write_json(opts.report)
    return report


def _save(report: RunReport, path: Path, client: Any) -> None:
    """The throughput plot of this run, while the cluster is still up."""
    from pipeline import dashboard

    if report.throughput_link:
        dashboard.save_throughput_report(dashboard.snapshot(client), path, run=report.run_id)
