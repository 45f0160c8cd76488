"""Command line: `python -m pipeline run|samples|--version`. Flags beat env vars, then defaults.

Exit status: 0 every input ok or skipped; 1 at least one input failed; 2 usage or set-up error
(one line on stderr, no traceback); 130 interrupted (Ctrl-C or SIGTERM; the report is still
written).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pipeline import config, logs
from pipeline.clihelp import MAIN_EXAMPLES, RUN_DESCRIPTION, RUN_EXAMPLES, SAMPLES_DESCRIPTION
from pipeline.config import RunOptions, Settings, TLSFiles
from pipeline.errors import UsageError
from pipeline.progress import Progress
from pipeline.report import RunReport
from pipeline.safety import shown
from pipeline.storage import as_location

T = TypeVar("T")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m pipeline",
        description="Make web-ready JPEGs from folders of images, on a local or remote Dask.",
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="process a folder of images (run --help for the options)",
        description=RUN_DESCRIPTION,
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(run)
    _add_convention_options(run)
    samples = commands.add_parser(
        "samples",
        help="write generated sample images to a folder",
        description=SAMPLES_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    samples.add_argument(
        "--output",
        type=Path,
        default=Path(config.DEFAULT_INPUT),
        metavar="PATH",
        help="[data/input]",
    )
    samples.add_argument("--count", type=int, default=24, help="number of images (default 24)")
    samples.add_argument("--scale", type=float, default=1.0, help="size factor (default 1.0)")
    return parser


def _add_run_options(run: argparse.ArgumentParser) -> None:
    add = run.add_argument
    add(
        "--input",
        type=as_location,
        metavar="PATH",
        help=f"folder or URL (s3://...) scanned for images [${config.ENV_INPUT}; data/input]",
    )
    add(
        "--output",
        type=as_location,
        metavar="PATH",
        help=f"folder or URL for the JPEGs [${config.ENV_OUTPUT}; data/output]",
    )
    add(
        "--max-size", type=int, metavar="N", help=f"fit within N x N [${config.ENV_MAX_SIZE}; 1920]"
    )
    add("--quality", type=int, metavar="Q", help=f"JPEG quality 1-95 [${config.ENV_QUALITY}; 85]")
    add("--scheduler", metavar="ADDR", help=f"existing Dask scheduler [${config.ENV_SCHEDULER}]")
    add("--workers", type=int, metavar="N", help="local cluster worker processes [all cores]")
    add("--overwrite", action="store_true", help="redo outputs that are already up to date")
    add("--report", type=Path, metavar="PATH", help="also write the JSON run report to PATH")
    add("--max-pixels", type=int, metavar="N", help="refuse larger images [100000000]")
    add("--background", metavar="COLOUR", default="white", help="behind transparency [white]")
    add("--timeout", type=float, metavar="S", help="per-image time limit in seconds [300]")
    add("--tls-ca-file", type=Path, metavar="PEM", help="CA certificate of a tls:// scheduler")
    add("--tls-cert", type=Path, metavar="PEM", help="client certificate for a tls:// scheduler")
    add("--tls-key", type=Path, metavar="PEM", help="client key (if not in --tls-cert)")
    add(
        "--connect-timeout",
        type=float,
        metavar="S",
        help="wait at most S s for the scheduler, and for a worker when it has none [10]",
    )
    add("--throughput-report", type=Path, metavar="HTML", help="save the per-core throughput plot")
    add("--performance-report", type=Path, metavar="HTML", help="save Dask's performance report")
    add("--keep-alive", action="store_true", help="keep the local cluster's dashboard up after")
    add("--quiet", action="store_true", help="no progress bar or summary on the terminal")
    # safety
    add(
        "--follow-symlinks",
        action="store_true",
        help="also read input links that lead outside the input folder",
    )
    add(
        "--scheduler-file",
        type=Path,
        metavar="PATH",
        help="existing Dask scheduler, from the file `dask scheduler --scheduler-file` writes",
    )
    # renditions: several sizes and formats from one decode
    add(
        "--sizes",
        type=config.parse_sizes,
        metavar="N,N,...",
        help="write each image at each of these sizes (the largest as <stem>.jpg, the others "
        "as <stem>-N.jpg) [the one --max-size]",
    )
    add(
        "--format",
        dest="formats",
        type=config.parse_formats,
        metavar="F,F,...",
        help="output formats, each at every size: jpeg, webp, avif [jpeg]",
    )
    add("--webp-quality", type=int, metavar="Q", help="WebP quality 1-100 [80]")
    add("--avif-quality", type=int, metavar="Q", help="AVIF quality 1-100 [60]")
    # inputs and metadata
    add(
        "--include",
        action="append",
        metavar="GLOB",
        help="only inputs whose path (relative to --input) matches GLOB; repeatable",
    )
    add("--exclude", action="append", metavar="GLOB", help="leave out matching inputs (wins)")
    add(
        "--keep-metadata",
        choices=config.KEEP_METADATA,
        default="none",
        metavar="POLICY",
        help="none: no EXIF or XMP; copyright: Artist, Copyright, XMP rights and creator; "
        "all: EXIF (GPS too; no thumbnail, no maker notes) and XMP [none]",
    )


def _add_convention_options(run: argparse.ArgumentParser) -> None:
    """--dry-run and how much the run tells (kept apart from the run's own options)."""
    group = run.add_argument_group("dry run, messages and progress")
    add = group.add_argument
    add("--dry-run", action="store_true", help="tell what would be done; write nothing, exit 0")
    add("-v", "--verbose", action="count", default=0, help="more log messages (-vv: debug)")
    add("-q", dest="quiet", action="store_true", help="the same as --quiet")
    levels = ", ".join(logs.LEVELS)
    add("--log-level", type=str.upper, choices=logs.LEVELS, metavar="LEVEL", help=levels)
    add(
        "--progress-every",
        type=float,
        default=10.0,
        metavar="S",
        help="when stdout is not a terminal: a progress line every S s (0: none) [10]",
    )


def resolve(args: argparse.Namespace, env: Mapping[str, str]) -> RunOptions:
    """Flags > env vars > defaults, validated: a bad value raises UsageError."""
    settings = Settings(
        max_size=_pick(
            args.max_size, config.env_int(env, config.ENV_MAX_SIZE), config.DEFAULT_MAX_SIZE
        ),
        quality=_pick(
            args.quality, config.env_int(env, config.ENV_QUALITY), config.DEFAULT_QUALITY
        ),
        max_pixels=_pick(args.max_pixels, None, config.DEFAULT_MAX_PIXELS),
        background=config.parse_background(args.background),
        sizes=args.sizes or (),
        formats=args.formats or config.DEFAULT_FORMATS,
        webp_quality=_pick(args.webp_quality, None, config.DEFAULT_WEBP_QUALITY),
        avif_quality=_pick(args.avif_quality, None, config.DEFAULT_AVIF_QUALITY),
        keep_metadata=args.keep_metadata,
    )
    return RunOptions(
        input=_pick(args.input, _path(env, config.ENV_INPUT), as_location(config.DEFAULT_INPUT)),
        output=_pick(
            args.output, _path(env, config.ENV_OUTPUT), as_location(config.DEFAULT_OUTPUT)
        ),
        settings=settings,
        scheduler=args.scheduler or config.env_str(env, config.ENV_SCHEDULER),
        workers=args.workers,
        overwrite=args.overwrite,
        report=args.report,
        timeout=_pick(args.timeout, None, config.DEFAULT_TIMEOUT),
        connect_timeout=_pick(args.connect_timeout, None, config.DEFAULT_CONNECT_TIMEOUT),
        tls=_tls(args),
        performance_report=args.performance_report,
        follow_symlinks=args.follow_symlinks,
        scheduler_file=args.scheduler_file,
        include=tuple(args.include or ()),
        exclude=tuple(args.exclude or ()),
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.version:
            print(f"pipeline {_version()}")
            return EXIT_OK
        if args.command is None:  # bare `python -m pipeline`: the help, as pip does
            parser.print_help()
            return EXIT_OK
        if args.command == "samples":
            return _samples(args)
        if args.progress_every < 0:
            raise UsageError(f"--progress-every must be 0 or more, got {args.progress_every}")
        level = logs.level_for(verbose=args.verbose, explicit=args.log_level)
        logs.configure(level)
        opts = dataclasses.replace(resolve(args, env), log_level=level)
        if args.dry_run:
            return _dry_run(opts, verbose=args.verbose)
        after = _After(args.throughput_report, keep_alive=args.keep_alive, quiet=args.quiet)
        return _run(opts, quiet=args.quiet, after=after, progress_every=args.progress_every)
    except UsageError as exc:
        print(f"pipeline: error: {shown(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the run started (e.g. while the cluster came up)
        print("pipeline: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _dry_run(opts: RunOptions, *, verbose: int) -> int:
    """Discover and check, in this process, without a cluster; print the plan, write nothing."""
    from pipeline.dryrun import plan

    found = plan(opts, examples=sys.maxsize if verbose else 5, all_examples=verbose > 0)
    print("\n".join(found.lines()), flush=True)
    return EXIT_OK


def _run(opts: RunOptions, *, quiet: bool, after: _After, progress_every: float = 10.0) -> int:
    from pipeline.cluster import start_local_early

    start_local_early(opts, os.environ)  # first: its imports overlap this process's own
    from pipeline.runner import run_pipeline

    signal.signal(signal.SIGTERM, _interrupt)
    report = RunReport(run_id=_run_id(), keep_records=False, spool_dir=_spool_dir(opts.report))
    bar = Progress(quiet=quiet, every=progress_every)
    try:
        run_pipeline(
            opts,
            report=report,
            progress=bar.update,
            on_connect=partial(_announce, report, quiet=quiet),
            on_finish=partial(after, report),
        )
        bar.close()
        if opts.report is not None:
            report.write_json(opts.report)
    finally:
        report.close()
    if not after.printed:
        _print_outcome(report, quiet=quiet)
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report.counts["failed"] else EXIT_OK


def _announce(report: RunReport, client: Any, *, quiet: bool) -> None:
    if not quiet and report.dashboard_link:
        extra = f"  (throughput: {report.throughput_link})" if report.throughput_link else ""
        print(f"Dask dashboard: {report.dashboard_link}{extra}", flush=True)


@dataclass
class _After:
    """What the CLI does once the last result is in, while the cluster is still up."""

    throughput: Path | None = None
    keep_alive: bool = False
    quiet: bool = False
    printed: bool = False  # the outcome was shown before keeping the dashboard alive

    def __call__(self, report: RunReport, client: Any) -> None:
        if self.throughput is not None and report.throughput_link:
            from pipeline import dashboard

            snap = dashboard.snapshot(client)
            dashboard.save_throughput_report(snap, self.throughput, run=report.run_id)
        if self.keep_alive and report.dashboard_link and not report.interrupted:
            _print_outcome(report, quiet=self.quiet)
            self.printed = True
            print(f"dashboard stays up at {report.dashboard_link} (Ctrl-C to stop)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)


def _print_outcome(report: RunReport, *, quiet: bool) -> None:
    for row in report.failures[:20]:
        print(f"failed: {shown(row['input'])}: {shown(str(row['error']))}", file=sys.stderr)
    if len(report.failures) > 20:
        print(f"... and {len(report.failures) - 20} more failed inputs", file=sys.stderr)
    if not quiet:
        print(report.summary_line(), flush=True)


def _samples(args: argparse.Namespace) -> int:
    from pipeline.samples import write_samples

    paths = write_samples(args.output, count=args.count, scale=args.scale)
    print(f"wrote {len(paths)} sample images to {args.output}")
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _pick(flag: T | None, env_value: T | None, default: T) -> T:
    return flag if flag is not None else env_value if env_value is not None else default


def _tls(args: argparse.Namespace) -> TLSFiles | None:
    if args.tls_ca_file is None and args.tls_cert is None:
        if args.tls_key is not None:
            raise UsageError("--tls-key needs --tls-ca-file and --tls-cert")
        return None
    if args.tls_ca_file is None or args.tls_cert is None:
        raise UsageError("TLS needs both --tls-ca-file and --tls-cert")
    return TLSFiles(ca_file=args.tls_ca_file, cert=args.tls_cert, key=args.tls_key)


def _path(env: Mapping[str, str], name: str) -> Path | str | None:
    value = config.env_str(env, name)
    return as_location(value) if value else None


def _spool_dir(report: Path | None) -> Path | None:
    if report is None:
        return None
    report.parent.mkdir(parents=True, exist_ok=True)
    return report.parent


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pipeline")
    except PackageNotFoundError:  # run from a checkout that was not installed
        from pipeline import __version__

        return __version__


def _run_id() -> str:
    import uuid

    return uuid.uuid4().hex[:12]


def main_entry() -> None:
    """Console script `pipeline`: the same commands as `python -m pipeline`."""
    exit_now(main())


def exit_now(code: int) -> None:
    """End the process once a command has returned: the cluster is closed, the report written.

    Skips the interpreter's teardown, which takes ~0.4 s after a run (freeing the objects of
    Dask, Bokeh and their imports one by one) and has nothing left to do.
    """
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
