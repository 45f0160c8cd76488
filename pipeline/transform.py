"""The pure image transform: encoded bytes + `Settings` in, a web-ready JPEG and its facts out.

The order is what makes it fast and small: open with a format allowlist (refuse by content, not by
name) -> check the pixel count from the header -> ask JPEG for a reduced-scale decode (DCT scaling)
-> decode the first frame only -> ONE resample to the exact target size (after an integer `reduce`)
-> then, on the small image only: EXIF orientation, tones to 8 bits, colour to sRGB, alpha over
the background -> baseline JPEG (4:2:0, optimized Huffman tables, no ICC, the caller's comment,
EXIF and XMP only as --keep-metadata says: pipeline.metadata). Untagged output is sRGB by
definition on the web, so no profile is embedded.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageCms, UnidentifiedImageError

from pipeline import heif, jpeg, metadata
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
ORIENTATION_TAG = 0x0112
JPEG_SUBSAMPLING = "4:2:0"

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
class Transformed:
    """A finished JPEG and the facts about how it was made."""

    data: bytes
    width: int
    height: int
    source_format: str
    source_mode: str
    source_size: tuple[int, int]
    orientation: int
    timings: dict[str, float]
    warnings: tuple[str, ...] = ()


def fit_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The size that fits within max_size x max_size: aspect kept (rounded), never upscaled."""
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= max_size:
        return width, height
    short_fit = max(1, (2 * short_side * max_size + long_side) // (2 * long_side))
    return (max_size, short_fit) if width >= height else (short_fit, max_size)


def transform(data: bytes, settings: Settings, *, comment: bytes = b"") -> Transformed:
    """Turn one encoded image into a web-ready JPEG; raise `ImageError` with a short reason."""
    notes: list[str] = []
    t0 = time.perf_counter()
    im, source = _decode(data, settings, notes)
    t1 = time.perf_counter()
    try:
        out = _render(im, source, settings, notes)
    except (OSError, ValueError, ImageCms.PyCMSError) as exc:
        raise ImageError(f"cannot convert {source.mode} image") from exc
    t2 = time.perf_counter()
    encoded = _encode(out, settings.quality, comment, source.meta)
    t3 = time.perf_counter()
    return Transformed(
        data=encoded,
        width=out.width,
        height=out.height,
        source_format=source.format,
        source_mode=source.mode,
        source_size=source.size,
        orientation=source.orientation,
        timings={"decode": t1 - t0, "resize": t2 - t1, "encode": t3 - t2},
        warnings=tuple(notes),
    )


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
        im, box = _reduced(im, data, settings.max_size)
        im.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(_unidentified_reason(data)) from None
    except MemoryError:
        raise ImageError("out of memory while decoding") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error, zlib.error, ...
        raise ImageError(_decode_reason(exc, fmt)) from None
    target = fit_size(*_upright(size, orientation), settings.max_size)
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
    tones = _tone_map(im)
    im = _resizable(im)
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
    return _to_srgb_over(im, source.icc, settings.background, notes)


def _resample_for(
    box: tuple[float, float, float, float], target: tuple[int, int], scaled: bool
) -> Image.Resampling:
    """The filter for shrinking `box` to `target`; `scaled`: the image was DCT-scaled on decode."""
    factor = min((box[2] - box[0]) / target[0], (box[3] - box[1]) / target[1])
    if factor < (LARGE_FACTOR if scaled else FULL_LARGE_FACTOR):
        return RESAMPLE
    return RESAMPLE_LARGE


def _resizable(im: Image.Image) -> Image.Image:
    """A mode that resamples correctly: no palette, no 1-bit, alpha premultiplied."""
    if im.mode.startswith("I;16"):
        return im.convert("I")
    if im.mode in ("1", "P", "PA") or (im.mode in ("L", "RGB") and im.has_transparency_data):
        im = im.convert("RGBA" if im.has_transparency_data else ("L" if im.mode == "1" else "RGB"))
    if im.mode in ("LA", "RGBA"):  # Pillow's own RGBA resize premultiplies but skips `reduce`
        return im.convert(im.mode[0:-1] + "a")
    if im.mode not in ("L", "RGB", "CMYK", "YCbCr", "LAB", "I", "F", "La", "RGBa"):
        return im.convert("RGBA" if im.has_transparency_data else "RGB")
    return im


def _tone_map(im: Image.Image) -> Callable[[Image.Image], Image.Image] | None:
    """8-bit tones for I;16 / I / F, from the full image's range (so the filter cannot shift it).

    I;16 (any byte order) is full scale: v / 257. For I and F: values in [0, 1] are fractions
    (x 255), in [0, 255] already 8-bit, in [0, 65535] 16-bit (/ 257); any other range (negative,
    larger, e.g. HDR or depth data) is stretched min..max to 0..255. Non-finite data is clipped.
    """
    if im.mode.startswith("I;16"):
        return _linear(1 / 257, 0.0)
    if im.mode not in ("I", "F"):
        return None
    extrema = im.getextrema()
    low, high = float(extrema[0]), float(extrema[1])  # type: ignore[arg-type]  # one band
    if not (math.isfinite(low) and math.isfinite(high)):
        return _linear(1.0, 0.0)
    if low >= 0 and high <= 1 and im.mode == "F":
        return _linear(255.0, 0.0)
    for top in (255, 65535):
        if low >= 0 and high <= top:
            return _linear(255 / top, 0.0)
    span = max(high - low, 1e-12)
    return _linear(255 / span, -low * 255 / span)


def _linear(scale: float, offset: float) -> Callable[[Image.Image], Image.Image]:
    def apply(im: Image.Image) -> Image.Image:  # +0.5: F -> L truncates, we want rounding
        return im.convert("F").point(lambda v: v * scale + offset + 0.5).convert("L")

    return apply


def _to_srgb_over(
    im: Image.Image, icc: bytes | None, background: tuple[int, int, int], notes: list[str]
) -> Image.Image:
    """Colour to sRGB (alpha set aside), then composite over the background."""
    alpha = None
    if im.mode in ("La", "RGBa", "LA", "RGBA"):
        im = im.convert(im.mode[0:-1] + "A")
        alpha = im.getchannel("A")
        im = im.convert(im.mode[0:-1])
    rgb = _to_srgb(im, icc, notes)
    if alpha is None:
        return rgb
    out = Image.new("RGB", rgb.size, background)
    out.paste(rgb, mask=alpha)
    return out


def _to_srgb(im: Image.Image, icc: bytes | None, notes: list[str]) -> Image.Image:
    if im.mode == "YCbCr":
        im = im.convert("RGB")
    if icc:
        converter, note = _icc_to_srgb(icc, im.mode)
        if note:
            notes.append(note)
        if converter is not None:
            return converter.apply(im)
    if im.mode == "LAB":
        return _lab_to_srgb().apply(im)
    return im if im.mode == "RGB" else im.convert("RGB")


@lru_cache(maxsize=32)
def _icc_to_srgb(icc: bytes, mode: str) -> tuple[ImageCms.ImageCmsTransform | None, str | None]:
    """A cached profile -> sRGB transform, or None for sRGB itself, or a note why not."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in (ImageCms.getProfileDescription(profile) or "").lower() and mode == "RGB":
            return None, None
    except (OSError, ValueError, ImageCms.PyCMSError):
        return None, "broken ICC profile ignored"
    try:
        return ImageCms.buildTransform(profile, _srgb(), mode, "RGB"), None
    except (OSError, ValueError, ImageCms.PyCMSError):
        return None, f"ICC profile does not fit {mode} image; ignored"


@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=1)
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
    return ImageCms.buildTransform(lab, _srgb(), "LAB", "RGB")


# -- encode -------------------------------------------------------------------------------------


def _encode(
    im: Image.Image, quality: int, comment: bytes, meta: metadata.Captured | None = None
) -> bytes:
    """Baseline RGB JPEG; `info` is cleared so no EXIF, ICC or old comment can ride along: the
    only metadata is what --keep-metadata captured (`meta`)."""
    im.info = {}
    buffer = io.BytesIO()
    im.save(
        buffer,
        "JPEG",
        quality=quality,
        optimize=True,
        subsampling=JPEG_SUBSAMPLING,
        comment=comment,
        **metadata.save_options(meta, "JPEG"),
    )
    return buffer.getvalue()
