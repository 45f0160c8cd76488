"""The pure image transform: encoded bytes + `Settings` in, web-ready renditions and facts out.

The order is what makes it fast and small: decode (`pipeline.decode`: open with a format
allowlist, check the pixel count from the header, a reduced-scale JPEG decode for the LARGEST
size, the first frame only) -> ONE resample to the exact target size
(after an integer `reduce`) -> then, on the small image only: EXIF orientation, tones to 8 bits,
colour to sRGB, alpha over the background (`pipeline.colour`). That is the largest rendition;
every smaller size is one more resample of it, so the decode and the colour work are done once
per input, whatever the number of sizes (compositing over a flat background and the tone map
are linear, so resampling after them is exact; only the ICC conversion, a smooth curve, moves
before the smaller resamples). Each size is then encoded in each format (`pipeline.encode`),
with EXIF and XMP only as --keep-metadata says (`pipeline.metadata`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image, ImageCms

from pipeline import colour, encode, metadata
from pipeline.config import Settings
from pipeline.decode import Source, decode, fit_size, upright
from pipeline.errors import ImageError

#: The one resample, by how much it still has to shrink (`_resample_for`): below LARGE_FACTOR
#: (what a DCT-scaled decode leaves, or a photo just above the target), and below
#: FULL_LARGE_FACTOR on a fully decoded image, which carries no DCT-scaling blur or aliasing for
#: the filter to mend, HAMMING: its window spans one source pixel per side where BICUBIC's spans
#: two, so it reads half the pixels. Everything else LANCZOS, which keeps what a shorter filter
#: would alias or blur, such as what the coarse 1/4 and 1/8 DCT scales leave for small targets.
#: The measurements behind these choices: docs/performance.md.
RESAMPLE = Image.Resampling.HAMMING
LARGE_FACTOR = 1.5
FULL_LARGE_FACTOR = 3.0
RESAMPLE_LARGE = Image.Resampling.LANCZOS
#: `resize` box-reduces by an integer factor first while keeping at least this ratio for the
#: filter; 3 is "indistinguishable from fair resampling" per Pillow's docs.
REDUCING_GAP = 3.0
#: A smaller rendition, from the largest one: BICUBIC below RENDITION_LARGE_FACTOR (1920 ->
#: 1280 px), else LANCZOS, after an integer box `reduce` that leaves at least
#: RENDITION_REDUCING_GAP. Measured against a full-decode LANCZOS reference at 1280 px on 60
#: corpus photos: HAMMING min 32.1 / median 41.4 dB, BICUBIC 32.9 / 42.7, LANCZOS 34.5 / 43.9;
#: CPU per resample on a 1920 px image ~17, ~27 and ~38 ms (a q85 JPEG encode: ~15 ms), so
#: LANCZOS alone took a 1920,1280,640 run past 1.4x the time of 1920 alone. A gap of 1.5 halves
#: LANCZOS' cost at 640 px for 2 dB of the median (43.6 -> 42.0 on the test photos).
RENDITION_RESAMPLE = Image.Resampling.BICUBIC
RENDITION_LARGE_FACTOR = 2.0
RENDITION_REDUCING_GAP = 1.5

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Rendition:
    """One encoded output: a size (as asked) in a format, and its pixels' dimensions."""

    data: bytes
    size: int
    format: str
    width: int
    height: int
    seconds: float  # encode time


@dataclass(frozen=True)
class Transformed:
    """The renditions of one input and the facts about how they were made.

    `data`, `width` and `height` are the first rendition's (one JPEG with the default settings).
    """

    data: bytes
    width: int
    height: int
    source_format: str
    source_mode: str
    source_size: tuple[int, int]
    orientation: int
    timings: dict[str, float]
    warnings: tuple[str, ...] = ()
    renditions: tuple[Rendition, ...] = ()
    dimensions: dict[int, tuple[int, int]] | None = None  # of every size, encoded or not


def transform(
    data: bytes,
    settings: Settings,
    *,
    comment: bytes = b"",
    markers: Mapping[tuple[int, str], bytes] | None = None,
) -> Transformed:
    """Turn one encoded image into web-ready renditions; raise `ImageError` with a short reason.

    `markers` names the renditions to encode, (size, format) -> the marker each carries; by
    default every size of `settings` in every format, each with `comment`. The largest size is
    made whether asked or not: the smaller ones are made from it.
    """
    wanted = markers or {
        (size, fmt): comment for size in settings.output_sizes for fmt in settings.formats
    }
    notes: list[str] = []
    t0 = time.perf_counter()
    im, source = decode(data, settings, notes)
    t1 = time.perf_counter()
    try:
        images = _sized(_render(im, source, settings, notes), source, {s for s, _ in wanted})
    except (OSError, ValueError, ImageCms.PyCMSError) as exc:
        raise ImageError(f"cannot convert {source.mode} image") from exc
    t2 = time.perf_counter()
    done = tuple(
        _encoded(images[size], size, fmt, settings, mark, source.meta)
        for (size, fmt), mark in wanted.items()
    )
    t3 = time.perf_counter()
    return Transformed(
        data=done[0].data,
        width=done[0].width,
        height=done[0].height,
        source_format=source.format,
        source_mode=source.mode,
        source_size=source.size,
        orientation=source.orientation,
        timings={"decode": t1 - t0, "resize": t2 - t1, "encode": t3 - t2},
        warnings=tuple(notes),
        renditions=done,
        dimensions={
            s: fit_size(*upright(source.size, source.orientation), s) for s in settings.output_sizes
        },
    )


def _encoded(
    im: Image.Image,
    size: int,
    fmt: str,
    settings: Settings,
    mark: bytes,
    meta: metadata.Captured | None,
) -> Rendition:
    started = time.perf_counter()
    kept = metadata.save_options(meta, encode.PILLOW_FORMATS[fmt])  # --keep-metadata
    data = encode.encode(im, fmt, settings, mark, kept)
    seconds = time.perf_counter() - started
    return Rendition(data, size, fmt, im.width, im.height, seconds)


# -- render: everything below runs on the small image, except the tone range and the resample --


def _render(im: Image.Image, source: Source, settings: Settings, notes: list[str]) -> Image.Image:
    """The largest rendition: resampled, upright, 8-bit sRGB over the background."""
    tones = colour.tone_map(im)
    im = colour.resizable(im)
    stored_target = upright(source.target, source.pending)
    if im.size != stored_target or source.box is not None:
        im = im.resize(
            stored_target,
            _resample_for(source.box or (0, 0, *im.size), stored_target, source.box is not None),
            box=source.box,
            reducing_gap=REDUCING_GAP,
        )
    if source.pending in _TRANSPOSE:
        im = im.transpose(_TRANSPOSE[source.pending])
    if tones is not None:
        im = tones(im)
    return colour.to_srgb_over(im, source.icc, settings.background, notes)


def _sized(largest: Image.Image, source: Source, sizes: set[int]) -> dict[int, Image.Image]:
    """Each size's image, resampled from the largest rendition; never larger than the source.

    A size fits the source's own upright dimensions (as a run of that size alone would), so a
    size bigger than the image gives the image's own size. Each is made from the largest one,
    not from the next size up, so its pixels do not depend on which other sizes are asked for.
    """
    whole = upright(source.size, source.orientation)
    images: dict[int, Image.Image] = {}
    for size in sorted(sizes, reverse=True):
        target = fit_size(*whole, size)
        if target == largest.size:
            images[size] = largest
        else:
            factor = min(largest.width / target[0], largest.height / target[1])
            images[size] = largest.resize(
                target,
                RENDITION_RESAMPLE if factor < RENDITION_LARGE_FACTOR else RESAMPLE_LARGE,
                reducing_gap=RENDITION_REDUCING_GAP,
            )
    return images


def _resample_for(
    box: tuple[float, float, float, float], target: tuple[int, int], scaled: bool
) -> Image.Resampling:
    """The filter for shrinking `box` to `target`; `scaled`: the image was DCT-scaled on decode."""
    factor = min((box[2] - box[0]) / target[0], (box[3] - box[1]) / target[1])
    if factor < (LARGE_FACTOR if scaled else FULL_LARGE_FACTOR):
        return RESAMPLE
    return RESAMPLE_LARGE
