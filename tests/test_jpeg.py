"""Reduced-scale JPEG decoding: the scale picked, the size and box handed on, the pixels, and
Pillow's verdict on files libjpeg-turbo complains about."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pipeline import jpeg
from pipeline.config import Settings
from pipeline.errors import ImageError
from pipeline.transform import fit_size, transform
from tests import imaging as H


def decoded(data: bytes, max_size: int) -> tuple[Image.Image, jpeg.Box | None, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as im:
        stored = im.size
        out, box = jpeg.decode_reduced(im, data, fit_size(*im.size, max_size))
        out.load()
        return out.copy(), box, stored


def versus_naive(data: bytes, max_size: int) -> float:
    with Image.open(io.BytesIO(data)) as im:
        naive = H.reference(data, fit_size(*im.size, max_size))
    naive = H.decode_rgb(H.encode(naive, "JPEG", quality=85, optimize=True))
    return H.psnr(H.decode_rgb(transform(data, Settings(max_size=max_size)).data), naive)


@pytest.mark.parametrize(
    ("size", "target", "expected"),
    [
        ((6000, 4000), (1920, 1280), 3),  # 3/8: 2250 x 1500, right down to the target is fine
        ((4000, 3000), (1920, 1440), 4),  # 3/8 would be 1500 < 1920
        ((8000, 6000), (640, 480), 1),  # 1/8: 1000 x 750 keeps the 1.5x margin
        ((2400, 1600), (1920, 1280), 8),  # libjpeg-turbo's 7/8 is not taken (see DCT_MARGIN)
        ((2000, 1500), (1920, 1440), 8),  # no scale keeps the target: full size
    ],
)
def test_the_smallest_scale_that_keeps_the_margin(
    size: tuple[int, int], target: tuple[int, int], expected: int
) -> None:
    assert jpeg.eighths_for(size, target, tuple(jpeg.DCT_MARGIN)) == expected


def test_pillow_draft_offers_only_its_own_scales() -> None:
    assert jpeg.eighths_for((6000, 4000), (1920, 1280), jpeg.DRAFT_EIGHTHS) == 4


@pytest.mark.parametrize(
    ("mode", "size", "progressive", "max_size", "eighths"),
    [
        ("RGB", (3000, 2000), False, 1000, 3),
        ("RGB", (3001, 2003), True, 1000, 3),  # not a multiple of 8: libjpeg rounds up, so do we
        ("L", (2003, 3001), False, 1000, 3),
        ("RGB", (1203, 805), False, 1200, 8),
    ],
)
def test_scaled_decode_size_and_box(
    mode: str, size: tuple[int, int], progressive: bool, max_size: int, eighths: int
) -> None:
    data = H.encode(H.photo_like(*size).convert(mode), "JPEG", quality=92, progressive=progressive)
    out, box, stored = decoded(data, max_size)
    assert (out.mode, out.size) == (mode, jpeg.scaled_size(stored, eighths))
    expected_box = None if eighths == 8 else (0, 0, size[0] * eighths / 8, size[1] * eighths / 8)
    assert box == expected_box


def test_three_eighths_quality() -> None:
    data = H.encode(H.photo_like(3001, 2003), "JPEG", quality=92)
    assert versus_naive(data, 1000) >= 38.0


def test_same_pixels_as_pillow_at_the_same_scale() -> None:
    """Both decode with libjpeg-turbo's ISLOW IDCT and fancy upsampling: at 1/2 the pixels
    agree (to within one level, should the two bundled libjpeg-turbo builds differ)."""
    data = H.encode(H.photo_like(2400, 1600), "JPEG", quality=90)
    ours, _, _ = decoded(data, 1100)  # 1/2: 1200 x 800 keeps 1100 x 733
    with Image.open(io.BytesIO(data)) as stock:
        stock.draft(None, (1200, 800))
        stock.load()
        assert stock.size == ours.size
        assert H.mean_abs_diff(ours, stock) < 0.05


def test_cmyk_goes_through_pillow_draft() -> None:
    data = H.encode(H.photo_like(3000, 2000).convert("CMYK"), "JPEG", quality=92)
    out, box, _ = decoded(data, 1000)
    assert (out.mode, out.size) == ("CMYK", (1500, 1000))  # 1/2: Pillow offers no 3/8
    assert box == (0, 0, 1500, 1000)


@pytest.mark.parametrize("size", [(1, 1), (3, 1), (7, 5)])
def test_tiny_cmyk_and_grey_jpegs_decode(size: tuple[int, int]) -> None:
    """Smaller than 8 px a side, the drafted size would round to 0 px."""
    for mode in ("CMYK", "L"):
        data = H.encode(Image.new(mode, size), "JPEG")
        result = transform(data, Settings(max_size=1))
        assert (result.width, result.height) == (1, 1)


def test_truncated_jpeg_gets_pillows_verdict() -> None:
    data = H.encode(H.photo_like(2400, 1600), "JPEG", quality=90)
    with pytest.raises(ImageError, match=r"^truncated JPEG$"):
        transform(data[: len(data) // 2], Settings(max_size=800))


def test_a_recoverable_glitch_still_decodes() -> None:
    """Stray bytes before a marker: libjpeg-turbo warns (simplejpeg's strict mode refuses),
    Pillow decodes it as it always did."""
    data = H.encode(H.photo_like(2400, 1600), "JPEG", quality=90)
    sos = data.index(b"\xff\xda")
    glitched = data[:sos] + b"\x00\x00\x00" + data[sos:]
    result = transform(glitched, Settings(max_size=800))
    assert (result.width, result.height) == (800, 533)
