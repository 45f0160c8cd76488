"""Scaled WebP decoding through Pillow's libwebp, alone and inside the transform."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pipeline import transform as t
from pipeline import webp
from pipeline.config import Settings
from tests import imaging as H


def test_libwebp_is_reachable_with_the_pinned_pillow() -> None:
    # If this fails, every WebP silently falls back to Pillow's full decode (correct, 2x slower).
    assert webp.available()


@pytest.mark.parametrize("lossless", [False, True])
def test_decodes_straight_to_the_requested_size(lossless: bool) -> None:
    source = H.photo_like(1200, 800, seed=4)
    data = H.encode(source, "WEBP", quality=90, lossless=lossless)
    out = webp.decode_scaled(data, (600, 400))
    assert out is not None
    assert (out.mode, out.size) == ("RGB", (600, 400))
    with Image.open(io.BytesIO(data)) as full:
        expected = full.convert("RGB").resize((600, 400), Image.Resampling.LANCZOS)
    assert H.psnr(out, expected) > 32


def test_keeps_the_colours_of_flat_areas() -> None:
    im = Image.new("RGB", (900, 600), (200, 40, 30))
    im.paste((20, 90, 210), (450, 0, 900, 600))
    out = webp.decode_scaled(H.encode(im, "WEBP", quality=95), (300, 200))
    assert out is not None
    assert max(abs(a - b) for a, b in zip(out.getpixel((40, 100)), (200, 40, 30), strict=True)) < 6
    assert max(abs(a - b) for a, b in zip(out.getpixel((260, 100)), (20, 90, 210), strict=True)) < 6


def test_alpha_and_animation_are_left_to_pillow() -> None:
    rgba = Image.new("RGBA", (400, 300), (200, 40, 30, 128))
    assert webp.decode_scaled(H.encode(rgba, "WEBP"), (200, 150)) is None
    frames = [Image.new("RGB", (400, 300), c) for c in ((220, 20, 20), (20, 20, 220))]
    animated = H.encode(frames[0], "WEBP", save_all=True, append_images=frames[1:])
    assert webp.decode_scaled(animated, (200, 150)) is None


def test_never_upscales_or_takes_a_zero_size() -> None:
    data = H.encode(H.photo_like(300, 200), "WEBP")
    assert webp.decode_scaled(data, (600, 400)) is None
    assert webp.decode_scaled(data, (0, 100)) is None


def test_transform_takes_the_scaled_path_for_a_large_still_webp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[tuple[int, int], bool]] = []
    real = webp.decode_scaled

    def spy(data: bytes, size: tuple[int, int]) -> Image.Image | None:
        out = real(data, size)
        calls.append((size, out is not None))
        return out

    monkeypatch.setattr(webp, "decode_scaled", spy)
    upright = H.photo_like(1000, 1500, seed=2)
    stored, exif = H.with_orientation(upright, 6)
    data = H.encode(stored, "WEBP", quality=92, exif=exif)
    result = t.transform(data, Settings(max_size=300))
    assert calls == [((300, 200), True)]  # stored orientation: 1500 x 1000 -> 300 x 200
    assert (result.width, result.height, result.orientation) == (200, 300, 6)
    out = H.decode_rgb(result.data)
    assert H.psnr(out, H.reference(data, out.size)) > 32


def test_profile_of_a_scaled_webp_is_still_converted() -> None:
    colour = (200, 100, 50)
    im = Image.new("RGB", (800, 800), colour)
    data = H.encode(im, "WEBP", quality=100, icc_profile=H.adobe_rgb_profile())
    out = H.decode_rgb(t.transform(data, Settings(max_size=100)).data)
    assert out.size == (100, 100)
    assert max(abs(a - b) for a, b in zip(H.mean_rgb(out), (227, 100, 42), strict=True)) < 4
