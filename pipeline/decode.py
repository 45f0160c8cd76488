"""Decode: encoded bytes in, the pixels to resample and the facts about them out (`Source`).

Open with a format allowlist (refuse by content, not by name) -> check the pixel count from the
header, before any pixel is decoded -> read the EXIF orientation and what --keep-metadata keeps
-> ask JPEG for a reduced-scale decode for the largest size (`pipeline.jpeg`) -> decode the first
frame only. Every failure is an `ImageError` with a short reason that names the format.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from pipeline import cicp, heif, jpeg, metadata
from pipeline.config import Settings
from pipeline.errors import ImageError

#: What Image.open may try. MPO (multi-picture JPEG, written by many cameras and phones as .jpg)
#: needs no entry: Pillow's JPEG opener returns an MpoImageFile itself (and "MPO" has no opener).
ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "AVIF")
ORIENTATION_TAG = 0x0112
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


def fit_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The size that fits within max_size x max_size: aspect kept (rounded), never upscaled."""
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= max_size:
        return width, height
    short_fit = max(1, (2 * short_side * max_size + long_side) // (2 * long_side))
    return (max_size, short_fit) if width >= height else (short_fit, max_size)


@dataclass(frozen=True)
class Source:
    """What the decode found: the render and the report need these facts."""

    format: str
    mode: str
    size: tuple[int, int]
    orientation: int  # as tagged
    pending: int  # the orientation still to apply to the decoded pixels
    target: tuple[int, int]  # output size, upright
    box: tuple[float, float, float, float] | None  # region of the drafted image to resample
    icc: bytes | None
    meta: metadata.Captured | None = None  # what --keep-metadata carries to the output


def decode(data: bytes, settings: Settings, notes: list[str]) -> tuple[Image.Image, Source]:
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
            size = upright(size, orientation)
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
    target = fit_size(*upright(size, orientation), settings.largest)
    icc = im.info.get("icc_profile") or _coded_colour(im, notes)
    # Pillow's TIFF reader applies the orientation itself while loading (and reports the upright
    # size from the start), so the TIFF pixels we get are already upright.
    pending = 1 if fmt == "TIFF" else orientation
    return im, Source(fmt, mode, size, orientation, pending, target, box, icc, meta)


def _coded_colour(im: Image.Image, notes: list[str]) -> bytes | None:
    """The ICC profile of colour given by code points (a HEIC's nclx box), if not sRGB's."""
    nclx = im.info.get("nclx_profile")
    if not nclx:
        return None
    found = cicp.note(nclx)
    if found:
        notes.append(found)
    return cicp.profile(nclx) if im.mode in ("RGB", "RGBA") else None


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


def upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
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
