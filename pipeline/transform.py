"""The pure image transform: encoded bytes + `Settings` in, web-ready renditions and facts out.

The order is what makes it fast and small: open with a format allowlist (refuse by content, not by
name) -> check the pixel count from the header -> ask JPEG for a reduced-scale decode (DCT scaling)
for the LARGEST size -> decode the first frame only -> ONE resample to the exact target size
(after an integer `reduce`) -> then, on the small image only: EXIF orientation, tones to 8 bits,
colour to sRGB, alpha over the background (`pipeline.colour`). That is the largest rendition;
every smaller size is one more resample of it, so the decode and the colour work are done once
per input, whatever the number of sizes (compositing over a flat background and the tone map
are linear, so resampling after them is exact; only the ICC conversion, a smooth curve, moves
before the smaller resamples). Each size is then encoded in each format (`pipeline.encode`),
with EXIF and XMP only as --keep-metadata says (`pipeline.metadata`).
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image, ImageCms, UnidentifiedImageError

from pipeline import colour, encode, heif, jpeg, metadata
from pipeline.config import Settings
from pipeline.errors import ImageError

#: What Image.open may try. MPO (multi-picture JPEG, written by many cameras and phones as .jpg)
#: needs no entry: Pillow's JPEG opener returns an MpoImageFile itself (and "MPO" has no opener).
ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "AVIF")
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
ORIENTATION_TAG = 0x0112

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_OWN_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
)
_FOREIGN_SIGNATURES = (
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF", "PDF"),
    (b"GIF8", "GIF"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"icns", "ICNS"),
    (b"gimp xcf", "XCF"),
    (b"DDS ", "DDS"),
    (b"qoif", "QOI"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
_FTYP_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF"}
_FTYP_BRANDS |= {b"heim": "HEIC", b"heis": "HEIC", b"hevc": "HEIC", b"hevx": "HEIC"}  # more HEIC


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


def fit_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The size that fits within max_size x max_size: aspect kept (rounded), never upscaled."""
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= max_size:
        return width, height
    short_fit = max(1, (2 * short_side * max_size + long_side) // (2 * long_side))
    return (max_size, short_fit) if width >= height else (short_fit, max_size)


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
    im, source = _decode(data, settings, notes)
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
            s: fit_size(*_upright(source.size, source.orientation), s)
            for s in settings.output_sizes
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


@dataclass(frozen=True)
class _Source:
    format: str
    mode: str
    size: tuple[int, int]
    orientation: int  # as tagged
    pending: int  # the orientation still to apply to the decoded pixels
    target: tuple[int, int]  # output size, upright
    box: tuple[float, float, float, float] | None  # region of the drafted image to resample
    icc: bytes | None
    meta: metadata.Captured | None = None  # what --keep-metadata carries to the output


# -- decode -------------------------------------------------------------------------------------


def _decode(data: bytes, settings: Settings, notes: list[str]) -> tuple[Image.Image, _Source]:
    """Open, check the pixel cap, draft, decode the first frame, read orientation and profile."""
    if not data:
        raise ImageError("empty file")
    _hand_pixel_limit_to_us()
    fmt = _sniff(data, _OWN_SIGNATURES) or "image"
    try:
        # HEIC/HEIF too when pillow-heif is installed (pipeline.heif)
        im: Image.Image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS + heif.register())
        fmt = im.format or fmt
        _check_pixels(im.size, settings.max_pixels)
        mode, size = im.mode, im.size
        if im.format == "PNG":  # eXIf may follow the pixels; getexif() would load them itself
            im.load()
        orientation = _orientation(im, notes)  # before load: TIFF forgets its tags after it
        meta = metadata.capture(im, settings.keep_metadata, notes)  # --keep-metadata
        if im.format == "TIFF":  # Pillow reports TIFF sizes upright
            size = _upright(size, orientation)
        im, box = _reduced(im, data, settings.largest)
        im.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(_unidentified_reason(data)) from None
    except MemoryError:
        raise ImageError("out of memory while decoding") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error, zlib.error, ...
        raise ImageError(_decode_reason(exc, fmt)) from None
    target = fit_size(*_upright(size, orientation), settings.largest)
    icc = im.info.get("icc_profile") or None
    # Pillow's TIFF reader applies the orientation itself while loading (and reports the upright
    # size from the start), so the TIFF pixels we get are already upright.
    pending = 1 if fmt == "TIFF" else orientation
    return im, _Source(fmt, mode, size, orientation, pending, target, box, icc, meta)


def _hand_pixel_limit_to_us() -> None:
    """Switch off Pillow's own decompression-bomb check, lazily (never at import).

    Pillow warns from 89 MP and refuses from 179 MP inside Image.open, whatever
    settings.max_pixels says; we enforce settings.max_pixels from the header before any decode,
    which is the cap that matters. Saving and restoring the global per call, or
    warnings.catch_warnings, would race between a Dask worker's threads; a plain idempotent
    assignment of the same value cannot. Only the process that runs transforms is affected.
    """
    if Image.MAX_IMAGE_PIXELS is not None:
        Image.MAX_IMAGE_PIXELS = None


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    pixels = size[0] * size[1]
    if pixels > max_pixels:
        raise ImageError(f"exceeds pixel limit ({_mp(pixels)} > {_mp(max_pixels)})")


def _mp(pixels: int) -> str:
    if pixels < 1_000_000:
        return f"{pixels} px"
    return f"{pixels / 1e6:.1f}".removesuffix(".0") + " MP"


def _reduced(
    im: Image.Image, data: bytes, max_size: int
) -> tuple[Image.Image, tuple[float, float, float, float] | None]:
    """A JPEG set up to decode at a reduced scale (see `pipeline.jpeg`); the box to resample.

    Other formats decode at full size: Pillow offers no reduced decode for them.
    """
    if im.format not in ("JPEG", "MPO"):
        return im, None
    target = fit_size(*im.size, max_size)  # stored orientation: same scale either way
    return jpeg.decode_reduced(im, data, target)


def _orientation(im: Image.Image, notes: list[str]) -> int:
    """The EXIF orientation 1-8; anything unreadable or out of range counts as 1."""
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # garbage EXIF: Pillow may raise nearly anything (or a warning as error)
        notes.append("unreadable EXIF ignored")
        return 1
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    notes.append(f"invalid EXIF orientation ({str(value)[:20]}) ignored")
    return 1


def _upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation >= 5 else size


def _sniff(data: bytes, table: tuple[tuple[bytes, str], ...]) -> str | None:
    return next((name for magic, name in table if data.startswith(magic)), None)


def _unidentified_reason(data: bytes) -> str:
    """Why the allowlisted openers all declined: one of ours broken, or something else."""
    own = _sniff(data, _OWN_SIGNATURES) or (
        "WEBP" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None
    )
    if own:
        return f"corrupt {own} header"
    foreign = _sniff(data, _FOREIGN_SIGNATURES) or _FTYP_BRANDS.get(data[8:12])
    head = data[:4096].lstrip().lower()
    if foreign is None and head.startswith((b"<?xml", b"<svg", b"<!doctype svg")):
        foreign = "SVG" if b"<svg" in head else None
    return heif.unsupported_reason(foreign) if foreign else "not an image"


def _decode_reason(exc: Exception, fmt: str) -> str:
    text = str(exc).lower()
    if isinstance(exc, EOFError) or "truncated" in text:
        return f"truncated {fmt}"
    return "corrupt image data"


# -- render: everything below runs on the small image, except the tone range and the resample --


def _render(im: Image.Image, source: _Source, settings: Settings, notes: list[str]) -> Image.Image:
    """The largest rendition: resampled, upright, 8-bit sRGB over the background."""
    tones = colour.tone_map(im)
    im = colour.resizable(im)
    stored_target = _upright(source.target, source.pending)
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


def _sized(largest: Image.Image, source: _Source, sizes: set[int]) -> dict[int, Image.Image]:
    """Each size's image, resampled from the largest rendition; never larger than the source.

    A size fits the source's own upright dimensions (as a run of that size alone would), so a
    size bigger than the image gives the image's own size. Each is made from the largest one,
    not from the next size up, so its pixels do not depend on which other sizes are asked for.
    """
    upright = _upright(source.size, source.orientation)
    images: dict[int, Image.Image] = {}
    for size in sorted(sizes, reverse=True):
        target = fit_size(*upright, size)
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
