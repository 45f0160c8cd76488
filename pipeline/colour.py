"""Colour work of the transform: modes that resample correctly, tones to 8 bits, sRGB, alpha.

`resizable` runs before the resample, `tone_map` reads the full image's range before it, and
the tone map and `to_srgb_over` run after it, on the small image only (see `pipeline.transform`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from functools import lru_cache

from PIL import Image, ImageCms


def resizable(im: Image.Image) -> Image.Image:
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


def tone_map(im: Image.Image) -> Callable[[Image.Image], Image.Image] | None:
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


def to_srgb_over(
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
