"""HEIC/HEIF inputs (pillow-heif) and AVIF inputs (Pillow): orientation once, sRGB, bit depth,
alpha, the allowlist by content, and the one-line error when pillow-heif is missing.

The HEIC files are made here with pillow-heif's own encoder (libheif + x265), as a phone makes
them: pixels stored as the sensor saw them, the rotation in the file's `irot` box and EXIF.
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO, missing, run_cli
from imaging import QUADRANTS, adobe_rgb_profile, adobe_to_srgb, encode, quadrants
from PIL import Image

from pipeline import heif
from pipeline.config import Settings
from pipeline.errors import ImageError
from pipeline.transform import transform

ORIENTATION, ARTIST, COPYRIGHT = 0x0112, 0x013B, 0x8298


def require_heif() -> Any:
    """pillow-heif, which `make install` installs; missing: skip, or fail when CI is set."""
    if importlib.util.find_spec("pillow_heif") is None:
        missing("pillow-heif is not installed: pip install '.[heif]' (make install does)")
    import pillow_heif

    heif.register()  # its encoder too: Image.save(..., "HEIF")
    return pillow_heif


def sideways_heic(upright: Image.Image, **params: Any) -> bytes:
    """A phone photo taken sideways: stored rotated, EXIF orientation 6 (and `irot`)."""
    require_heif()
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[ARTIST], exif[COPYRIGHT] = "Jane Doe", "(c) 2026 Jane Doe"
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    return encode(stored, "HEIF", exif=exif.tobytes(), quality=95, **params)


def assert_upright_quadrants(data: bytes, size: tuple[int, int]) -> None:
    with Image.open(io.BytesIO(data)) as out:
        assert out.size == size
        assert out.mode == "RGB"
        w, h = size
        for (x, y), colour in zip(((0, 0), (1, 0), (0, 1), (1, 1)), QUADRANTS, strict=True):
            seen = out.getpixel((w // 4 + x * w // 2, h // 4 + y * h // 2 + h // 8))
            assert max(abs(a - b) for a, b in zip(seen, colour, strict=True)) < 24, (seen, colour)


def test_a_sideways_heic_comes_out_upright() -> None:
    pillow_heif = require_heif()
    data = sideways_heic(quadrants(240, 160))
    assert data[4:12] == b"ftypheic"
    stored = pillow_heif.open_heif(io.BytesIO(data))  # the file really is tagged sideways
    tagged = Image.Exif()
    tagged.load(stored.info["exif"].removeprefix(b"Exif\0\0"))
    assert tagged[ORIENTATION] == 6
    result = transform(data, Settings(max_size=120))
    assert result.source_format == "HEIF"
    assert (result.width, result.height) == (120, 80)
    assert_upright_quadrants(result.data, (120, 80))


@pytest.mark.parametrize("policy", ["none", "copyright", "all"])
def test_heic_metadata_follows_the_policy(policy: str) -> None:
    result = transform(sideways_heic(quadrants(96, 64)), Settings(keep_metadata=policy))
    assert_upright_quadrants(result.data, (96, 64))
    with Image.open(io.BytesIO(result.data)) as out:
        exif = dict(out.getexif())
    if policy == "none":
        assert exif == {}
    else:
        assert (exif[ARTIST], exif[COPYRIGHT]) == ("Jane Doe", "(c) 2026 Jane Doe")
        assert exif.get(ORIENTATION, 1) == 1  # upright pixels: no viewer may turn them again


def test_heic_colour_is_converted_to_srgb() -> None:
    require_heif()
    adobe = (40, 160, 90)
    data = encode(
        Image.new("RGB", (64, 48), adobe), "HEIF", quality=95, icc_profile=adobe_rgb_profile()
    )
    with Image.open(io.BytesIO(transform(data, Settings()).data)) as out:
        seen = out.getpixel((32, 24))
    expected = adobe_to_srgb(adobe)
    assert max(abs(a - b) for a, b in zip(seen, expected, strict=True)) <= 6, (seen, expected)
    assert max(abs(a - b) for a, b in zip(seen, adobe, strict=True)) > 12  # it did change


def display_p3_to_srgb(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Display P3 -> sRGB by the matrices of CSS Color 4's sample code (lin_P3_to_XYZ,
    XYZ_to_lin_sRGB; https://www.w3.org/TR/css-color-4/#color-conversion-code), both D65."""
    p3_to_xyz = np.array(
        [[0.4865709486482162, 0.26566769316909306, 0.1982172852343625],
         [0.2289745640697488, 0.6917385218365064, 0.079286914093745],
         [0.0, 0.04511338185890264, 1.043944368900976]]
    )  # fmt: skip
    xyz_to_srgb = np.array(
        [[3.2409699419045226, -1.537383177570094, -0.4986107602930034],
         [-0.9692436362808796, 1.8759675015077202, 0.04155505740717559],
         [0.05563007969699366, -0.20397695888897652, 1.0569715142428786]]
    )  # fmt: skip
    v = np.array(rgb) / 255
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    out = np.clip(xyz_to_srgb @ p3_to_xyz @ linear, 0, 1)
    encoded = np.where(out <= 0.0031308, out * 12.92, 1.055 * out ** (1 / 2.4) - 0.055)
    r, g, b = (round(float(c) * 255) for c in encoded)
    return r, g, b


@pytest.mark.parametrize(("primaries", "wide"), [(12, True), (1, False)])
def test_heic_colour_given_by_code_points_is_converted_to_srgb(primaries: int, wide: bool) -> None:
    """A phone photo in Display P3 with no ICC profile, only an nclx box (primaries 12): its
    colours are converted, not taken for sRGB (primaries 1, which need nothing)."""
    require_heif()
    colour = (200, 100, 50)
    data = encode(
        Image.new("RGB", (64, 48), colour), "HEIF", quality=95,
        color_primaries=primaries, transfer_characteristics=13, matrix_coefficients=6,
        full_range_flag=1,
    )  # fmt: skip
    with Image.open(io.BytesIO(data)) as probe:
        assert "icc_profile" not in probe.info
        assert probe.info["nclx_profile"]["color_primaries"] == primaries
    result = transform(data, Settings())
    assert result.warnings == ()
    with Image.open(io.BytesIO(result.data)) as out:
        seen = out.getpixel((32, 24))
    expected = display_p3_to_srgb(colour) if wide else colour
    assert max(abs(a - b) for a, b in zip(seen, expected, strict=True)) <= 4, (seen, expected)
    if wide:  # (215, 93, 31): taken for sRGB, it would stay as stored
        assert max(abs(a - b) for a, b in zip(seen, colour, strict=True)) > 12


def test_hdr_heic_colour_is_reported_taken_as_sdr() -> None:
    require_heif()
    data = encode(
        Image.new("RGB", (32, 32), (90, 90, 90)), "HEIF", quality=90,
        color_primaries=9, transfer_characteristics=16, matrix_coefficients=9, full_range_flag=1,
    )  # fmt: skip
    assert transform(data, Settings()).warnings == ("HDR colour (PQ) taken as SDR",)


def test_ten_bit_heic_and_sixteen_bit_grey() -> None:
    pillow_heif = require_heif()
    pixels = np.zeros((40, 60, 3), dtype="<u2")
    pixels[...] = (0xFFFF, 0x8000, 0x2000)
    ten_bit = io.BytesIO()
    pillow_heif.from_bytes(mode="RGB;16", size=(60, 40), data=pixels.tobytes()).save(ten_bit)
    with Image.open(io.BytesIO(ten_bit.getvalue())) as probe:
        assert probe.info["bit_depth"] == 10
    with Image.open(io.BytesIO(transform(ten_bit.getvalue(), Settings()).data)) as out:
        r, g, b = out.getpixel((30, 20))
    assert max(abs(r - 255), abs(g - 128), abs(b - 32)) <= 4, (r, g, b)
    grey = Image.frombytes("I;16", (64, 8), np.full((8, 64), 0x8000, dtype="<u2").tobytes())
    result = transform(encode(grey, "HEIF"), Settings())
    with Image.open(io.BytesIO(result.data)) as out:
        assert abs(out.getpixel((32, 4))[0] - 128) <= 3


def test_heic_alpha_is_composited_over_the_background() -> None:
    require_heif()
    rgba = Image.new("RGBA", (64, 48), (200, 0, 0, 0))
    rgba.paste((0, 0, 200, 255), (0, 0, 32, 48))
    data = encode(rgba, "HEIF", quality=95)
    with Image.open(io.BytesIO(transform(data, Settings(background=(0, 255, 0))).data)) as out:
        left, right = out.getpixel((8, 24)), out.getpixel((56, 24))
    assert max(abs(a - b) for a, b in zip(left, (0, 0, 200), strict=True)) < 24, left
    assert max(abs(a - b) for a, b in zip(right, (0, 255, 0), strict=True)) < 24, right


def test_a_sideways_avif_comes_out_upright_through_pillow() -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    stored = quadrants(240, 160).transpose(Image.Transpose.ROTATE_90)
    data = encode(stored, "AVIF", exif=exif.tobytes(), quality=95)
    result = transform(data, Settings(max_size=120))
    assert result.source_format == "AVIF"
    assert_upright_quadrants(result.data, (120, 80))


def test_register_is_idempotent_and_thread_safe() -> None:
    require_heif()
    found: list[tuple[str, ...]] = []
    threads = [threading.Thread(target=lambda: found.append(heif.register())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [heif.FORMATS] * 8 == [("HEIF",)] * 8
    assert heif.available()


def test_a_broken_heic_is_one_line() -> None:
    require_heif()
    data = sideways_heic(quadrants(64, 48))
    with pytest.raises(ImageError, match=r"^corrupt HEIC header$"):
        transform(data[:40], Settings())


WITHOUT_PILLOW_HEIF = """
import sys
sys.modules["pillow_heif"] = sys.modules["pi_heif"] = None  # as if not installed: imports fail
from pipeline.config import Settings
from pipeline.errors import ImageError
from pipeline.transform import transform
try:
    transform(open(sys.argv[1], "rb").read(), Settings())
except ImageError as exc:
    print(exc)
"""


def test_without_pillow_heif_a_heic_fails_with_what_to_install(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(sideways_heic(quadrants(64, 48)))
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PILLOW_HEIF, str(path)],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert (
        result.stdout
        == "unsupported image format (HEIC): pip install 'pipeline[heif]' (pillow-heif)\n"
    )


def test_a_run_takes_phone_photos(tmp_path: Path) -> None:
    """The CLI on a real local cluster: HEIC and AVIF found by extension, upright, one pass."""
    source = tmp_path / "in"
    source.mkdir()
    (source / "IMG_0001.HEIC").write_bytes(sideways_heic(quadrants(240, 160)))
    stored = quadrants(160, 120)
    (source / "still.avif").write_bytes(encode(stored, "AVIF", quality=95))
    args = ["run", "--input", source, "--output", tmp_path / "out", "--max-size", "120"]
    result = run_cli(*args, "--workers", "1", report=tmp_path / "r.json")
    assert result.code == 0, result.stderr
    rows = result.by_input()
    assert {k: v["status"] for k, v in rows.items()} == {"IMG_0001.HEIC": "ok", "still.avif": "ok"}
    assert_upright_quadrants((tmp_path / "out" / "IMG_0001.jpg").read_bytes(), (120, 80))
    assert_upright_quadrants((tmp_path / "out" / "still.jpg").read_bytes(), (120, 90))
