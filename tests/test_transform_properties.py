"""Properties of the transform over generated sizes, modes, formats and orientations."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.config import Settings
from pipeline.transform import fit_size, transform
from tests import imaging as H

#: mode -> formats Pillow can write it to (and read back)
MODES = {
    "1": ("PNG", "BMP", "TIFF"),
    "L": ("PNG", "JPEG", "TIFF", "WEBP"),
    "P": ("PNG", "BMP", "TIFF"),
    "LA": ("PNG", "TIFF"),
    "RGB": ("PNG", "JPEG", "BMP", "TIFF", "WEBP"),
    "RGBA": ("PNG", "TIFF", "WEBP"),
    "CMYK": ("JPEG", "TIFF"),
    "LAB": ("TIFF",),
    "I;16": ("PNG", "TIFF"),
    "I": ("TIFF",),
    "F": ("TIFF",),
}


def _image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode in ("I;16", "I", "F"):
        top = {"I;16": 65535, "I": 70000, "F": 1.0}[mode]
        dtype = {"I;16": "<u2", "I": "<i4", "F": "<f4"}[mode]
        pixels = (rng.random((height, width)) * top).astype(dtype)
        return Image.frombytes(mode, (width, height), pixels.tobytes())
    base = H.photo_like(width, height, seed)
    if mode == "P":
        return base.quantize(16)
    if mode in ("LA", "RGBA"):
        im = base.convert(mode)
        im.putalpha(Image.fromarray((rng.random((height, width)) * 255).astype(np.uint8)))
        return im
    return base.convert(mode)


@st.composite
def images(draw: st.DrawFn) -> tuple[bytes, tuple[int, int], int]:
    mode = draw(st.sampled_from(sorted(MODES)))
    fmt = draw(st.sampled_from(MODES[mode]))
    width = draw(st.integers(1, 3000))
    height = draw(st.integers(1, max(1, min(3000, 1_500_000 // width))))  # keep examples fast
    if fmt == "WEBP":
        width, height = min(width, 16383), min(height, 16383)
    orientation = draw(st.integers(1, 8)) if fmt in ("JPEG", "PNG", "WEBP") else 1
    stored, exif = H.with_orientation(
        _image(mode, width, height, draw(st.integers(0, 9))), orientation
    )
    return H.encode(stored, fmt, exif=exif), (width, height), orientation


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=images(), max_size=st.integers(1, 2500), quality=st.integers(1, 95))
def test_output_fits_keeps_aspect_never_upscales(
    case: tuple[bytes, tuple[int, int], int], max_size: int, quality: int
) -> None:
    data, (width, height), orientation = case
    result = transform(data, Settings(max_size=max_size, quality=quality))
    out = H.decode_rgb(result.data)
    markers = H.jpeg_markers(result.data)
    assert out.mode == "RGB"
    assert 0xC0 in markers or 0xC2 in markers
    assert 0xE1 not in markers  # no EXIF, so no orientation tag
    assert out.size == (result.width, result.height) == fit_size(width, height, max_size)
    assert max(out.size) <= max_size
    assert out.width <= width
    assert out.height <= height
    # aspect within 1 px: the short side is what the long side implies, +-1
    long_in, short_in = max(width, height), min(width, height)
    long_out, short_out = max(out.size), min(out.size)
    assert abs(short_out - long_out * short_in / long_in) <= 1
    assert result.orientation == orientation
    assert transform(data, Settings(max_size=max_size, quality=quality)).data == result.data


@settings(max_examples=25, deadline=None)
@given(width=st.integers(1, 100_000), height=st.integers(1, 100_000), max_size=st.integers(1, 5000))
def test_fit_size(width: int, height: int, max_size: int) -> None:
    out_w, out_h = fit_size(width, height, max_size)
    assert 1 <= out_w <= min(width, max_size)
    assert 1 <= out_h <= min(height, max_size)
    assert max(out_w, out_h) == min(max(width, height), max_size)
    assert abs(out_w * height - out_h * width) <= max(width, height)  # within 1 px of the aspect
