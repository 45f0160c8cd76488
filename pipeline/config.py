"""Run configuration: named defaults, validation, and flag > env var > default resolution.

`Settings` holds what shapes an output image (and so its fingerprint); `RunOptions` holds where
the work comes from and goes, and how it is run. Both are frozen and validated on construction,
so a bad value is a `UsageError` before any work starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import select
from pipeline.errors import UsageError

DEFAULT_INPUT = "data/input"
DEFAULT_OUTPUT = "data/output"
DEFAULT_MAX_SIZE = 1920
DEFAULT_QUALITY = 85
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_BACKGROUND = (255, 255, 255)
DEFAULT_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0
MAX_QUALITY = 95
#: The output formats, in the order a run lists them by default; each is Pillow's own encoder.
FORMATS = ("jpeg", "webp", "avif")
DEFAULT_FORMATS = ("jpeg",)
#: WebP 80 and AVIF 60 look like JPEG 85 at about 70% and 50% of its bytes on photos.
DEFAULT_WEBP_QUALITY = 80
DEFAULT_AVIF_QUALITY = 60
WEBP_SIZE_LIMIT = 16_383  # the largest side a WebP can hold
MAX_SIZE_LIMIT = 65_500  # the largest side a baseline JPEG can hold
KEEP_METADATA = ("none", "copyright", "all")  # what pipeline.metadata keeps of EXIF and XMP

#: Bumped whenever the transform changes its output for the same settings, so that
#: outputs made by an older version are redone rather than skipped.
TRANSFORM_VERSION = 1

ENV_INPUT = "INPUT_DIR"
ENV_OUTPUT = "OUTPUT_DIR"
ENV_MAX_SIZE = "MAX_SIZE"
ENV_QUALITY = "JPEG_QUALITY"
ENV_SCHEDULER = "DASK_SCHEDULER_ADDRESS"


@dataclass(frozen=True)
class Settings:
    """What shapes an output image; equal settings give byte-identical outputs."""

    max_size: int = DEFAULT_MAX_SIZE
    quality: int = DEFAULT_QUALITY
    max_pixels: int = DEFAULT_MAX_PIXELS
    background: tuple[int, int, int] = DEFAULT_BACKGROUND
    sizes: tuple[int, ...] = ()  # several sizes (any order); empty: the one `max_size`
    formats: tuple[str, ...] = DEFAULT_FORMATS  # every size is written in each, in this order
    webp_quality: int = DEFAULT_WEBP_QUALITY
    avif_quality: int = DEFAULT_AVIF_QUALITY
    keep_metadata: str = "none"  # --keep-metadata: none, copyright or all (pipeline.metadata)

    def __post_init__(self) -> None:
        # lists (from JSON, or a caller) and `"jpeg,webp"` text become the tuples hashed here
        if isinstance(self.sizes, str):
            object.__setattr__(self, "sizes", parse_sizes(self.sizes))
        if isinstance(self.formats, str):
            object.__setattr__(self, "formats", parse_formats(self.formats))
        object.__setattr__(self, "sizes", tuple(self.sizes))
        object.__setattr__(self, "formats", tuple(self.formats))
        _check_range("--max-size", self.max_size, 1, MAX_SIZE_LIMIT)
        _check_range("--quality", self.quality, 1, MAX_QUALITY)
        _check_range("--max-pixels", self.max_pixels, 1, 2**40)
        if len(self.background) != 3 or not all(0 <= c <= 255 for c in self.background):
            raise UsageError(f"--background must be three values 0-255, got {self.background}")
        for size in self.sizes:
            _check_range("--sizes", size, 1, MAX_SIZE_LIMIT)
        _check_formats(self.formats)
        _check_range("--webp-quality", self.webp_quality, 1, 100)
        _check_range("--avif-quality", self.avif_quality, 1, 100)
        if "webp" in self.formats and self.output_sizes[0] > WEBP_SIZE_LIMIT:
            raise UsageError(f"WebP holds at most {WEBP_SIZE_LIMIT} px a side; use a smaller size")
        if self.keep_metadata not in KEEP_METADATA:
            choices = ", ".join(KEEP_METADATA)
            raise UsageError(
                f"--keep-metadata must be one of {choices}, got {self.keep_metadata!r}"
            )

    @property
    def output_sizes(self) -> tuple[int, ...]:
        """The sizes to write, largest first, each once."""
        return tuple(sorted(set(self.sizes or (self.max_size,)), reverse=True))

    @property
    def largest(self) -> int:
        """The size the decode and the colour work are done for."""
        return self.output_sizes[0]

    def fingerprint(self, size: int | None = None, fmt: str | None = None) -> str:
        """A short stable hash of everything that changes one output's bytes.

        The output is the one of `size` (default: the largest) in `fmt` (default: the first
        format). A JPEG of the largest size hashes exactly the single-size settings, so a run
        that adds sizes or formats leaves the outputs it already has up to date. A smaller size
        is resampled from the largest one, so the largest is part of its recipe.
        """
        size = self.largest if size is None else size
        fmt = self.formats[0] if fmt is None else fmt
        quality = {"jpeg": self.quality, "webp": self.webp_quality, "avif": self.avif_quality}
        kind = "" if fmt == "jpeg" else f"{fmt};"
        origin = "" if size == self.largest else f";from={self.largest}"
        text = (
            f"v{TRANSFORM_VERSION};size={size};{kind}q={quality[fmt]};"
            f"bg={','.join(map(str, self.background))}{origin}"
        )
        if self.keep_metadata != "none":  # the default leaves existing outputs up to date
            text += f";meta={self.keep_metadata}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for a TLS-secured scheduler (see `dask scheduler --tls-*`)."""

    ca_file: Path
    cert: Path
    key: Path | None = None  # None when the key is inside the certificate file

    def __post_init__(self) -> None:
        for path in (self.ca_file, self.cert, self.key):
            if path is not None and not path.is_file():
                raise UsageError(f"TLS file not found: {path}")


@dataclass(frozen=True)
class RunOptions:
    """Where a run reads and writes, and how it is executed."""

    input: Path | str = Path(DEFAULT_INPUT)  # a folder, or a URL such as s3://bucket/prefix
    output: Path | str = Path(DEFAULT_OUTPUT)
    settings: Settings = field(default_factory=Settings)
    scheduler: str | None = None
    workers: int | None = None
    overwrite: bool = False
    report: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    tls: TLSFiles | None = None  # client certificates for a tls:// scheduler
    performance_report: Path | None = None  # Dask's performance_report HTML of the run
    follow_symlinks: bool = False  # read input links that lead outside the input folder
    # -v/-q/--log-level: a logging level name, for the local cluster's `silence_logs` too
    log_level: str | None = None
    scheduler_file: Path | None = None  # written by `dask scheduler --scheduler-file`
    # --include / --exclude glob patterns on input paths (pipeline.select)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # a list (from a JSON report) or one string becomes a tuple; a bad pattern a UsageError
        object.__setattr__(self, "include", select.check(self.include, "--include"))
        object.__setattr__(self, "exclude", select.check(self.exclude, "--exclude"))
        if self.workers is not None:
            _check_range("--workers", self.workers, 1, 4096)
        if not self.timeout > 0:
            raise UsageError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if not self.connect_timeout > 0:
            raise UsageError(f"--connect-timeout must be positive, got {self.connect_timeout}")


def parse_sizes(text: str) -> tuple[int, ...]:
    """`1920,1280,640` -> (1920, 1280, 640); each size is checked by `Settings`."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes:
        raise UsageError(f"--sizes must be sizes in px separated by commas, got {text!r}")
    return sizes


def parse_formats(text: str) -> tuple[str, ...]:
    """`jpeg,webp` -> ("jpeg", "webp"): lower case, `jpg` taken for `jpeg`, checked."""
    names = tuple(
        "jpeg" if part.strip().lower() == "jpg" else part.strip().lower()
        for part in text.split(",")
        if part.strip()
    )
    _check_formats(names)
    return names


def parse_background(text: str) -> tuple[int, int, int]:
    """`white`, `black`, `#rrggbb` or `r,g,b` -> an RGB triple."""
    named = {"white": (255, 255, 255), "black": (0, 0, 0)}
    value = text.strip().lower()
    if value in named:
        return named[value]
    try:
        if value.startswith("#") and len(value) == 7:
            return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
        parts = tuple(int(p) for p in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
        raise UsageError(f"--background must be white, black, #rrggbb or r,g,b; got {text!r}")
    return (parts[0], parts[1], parts[2])


def env_int(env: Mapping[str, str], name: str) -> int | None:
    """An integer env var, or None when unset or empty; a bad value is a UsageError."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{name} must be an integer, got {raw!r}") from None


def env_str(env: Mapping[str, str], name: str) -> str | None:
    """A string env var with surrounding quotes removed (as Dask's own config does)."""
    raw = env.get(name, "").strip().strip("'\"")
    return raw or None


def _check_formats(formats: tuple[str, ...]) -> None:
    if not formats or any(f not in FORMATS for f in formats) or len(set(formats)) < len(formats):
        raise UsageError(
            f"--format must be one or more of {', '.join(FORMATS)} separated by commas, "
            f"each once; got {','.join(map(str, formats)) or 'none'}"
        )


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{name} must be an integer from {low} to {high}, got {value!r}")
