"""Colour code points (H.273, a HEIC's nclx box) as an ICC profile that LittleCMS converts."""

from __future__ import annotations

import datetime
import io
import struct
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms

from pipeline import cicp

# Display P3 and BT.2020 by their H.273 chromaticities (red, green, blue, white: x, y)
P3 = (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290)
BT709 = (0.640, 0.330, 0.300, 0.600, 0.150, 0.060, 0.3127, 0.3290)
BT2020 = (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290)
SRGB_TO_XYZ = np.array(  # IEC 61966-2-1 (D65)
    [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
)


def nclx(primaries: int, transfer: int, xy: tuple[float, ...] = P3) -> dict[str, Any]:
    names = [f"color_primary_{c}_{a}" for c in ("red", "green", "blue", "white") for a in "xy"]
    return {
        "color_primaries": primaries, "transfer_characteristics": transfer,
        "matrix_coefficients": 6, "full_range_flag": 1, **dict(zip(names, xy, strict=True)),
    }  # fmt: skip


def rgb_to_xyz(xy: tuple[float, ...]) -> np.ndarray:
    """The textbook RGB -> XYZ matrix of chromaticities `xy`, to check the module's against."""
    cols = np.array(
        [[x / y, 1.0, (1 - x - y) / y] for x, y in zip(xy[0:6:2], xy[1:6:2], strict=True)]
    ).T
    wx, wy = xy[6:]
    return cols * np.linalg.solve(cols, [wx / wy, 1.0, (1 - wx - wy) / wy])


def convert(icc: bytes, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    transform = ImageCms.buildTransform(source, srgb, "RGB", "RGB")
    pixel = transform.apply(Image.new("RGB", (1, 1), rgb)).getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return pixel


def expected(rgb: tuple[int, int, int], xy: tuple[float, ...], gamma: float | None) -> list[int]:
    """sRGB of `rgb` in primaries `xy` with sRGB's curve (gamma None) or a pure gamma."""
    v = np.array(rgb) / 255
    if gamma is None:
        v = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    else:
        v = v**gamma
    out = np.clip(np.linalg.solve(SRGB_TO_XYZ, rgb_to_xyz(xy) @ v), 0, 1)
    encoded = np.where(out <= 0.0031308, out * 12.92, 1.055 * out ** (1 / 2.4) - 0.055)
    return [round(float(c) * 255) for c in encoded]


@pytest.mark.parametrize(
    ("primaries", "xy", "transfer", "gamma", "rgb"),
    [(12, P3, 13, None, (200, 100, 50)), (12, P3, 1, None, (30, 160, 220)),
     (12, P3, 2, None, (30, 160, 220)), (12, P3, 8, 1.0, (128, 200, 64)),
     (9, BT2020, 13, None, (120, 180, 90)), (1, BT709, 8, 1.0, (128, 200, 64)),
     (2, BT709, 5, 2.8, (40, 90, 160)), (12, P3, 4, 2.2, (40, 90, 160))],
)  # fmt: skip
def test_the_profile_converts_as_the_primaries_and_curve_say(
    primaries: int, xy: tuple[float, ...], transfer: int, gamma: float | None,
    rgb: tuple[int, int, int],
) -> None:  # fmt: skip
    """Wide primaries with any curve; sRGB's primaries (or unspecified ones) with another curve
    than sRGB's (a linear BT.709 photo would look far too dark taken for sRGB)."""
    given = nclx(primaries, transfer, xy if primaries > 2 else P3)  # 1, 2: their own, not these
    icc = cicp.profile(given)
    assert icc is not None
    seen = convert(icc, rgb)
    want = expected(rgb, xy, gamma)
    assert max(abs(a - b) for a, b in zip(seen, want, strict=True)) <= 2, (seen, want)
    assert max(abs(a - b) for a, b in zip(seen, rgb, strict=True)) > 8  # not sRGB


def test_the_profile_is_well_formed() -> None:
    icc = cicp.profile(nclx(12, 13))
    assert icc is not None
    assert struct.unpack(">I", icc[:4])[0] == len(icc)
    assert icc[36:40] == b"acsp"
    assert icc[12:20] == b"mntrRGB "
    (count,) = struct.unpack(">I", icc[128:132])
    types = {b"desc": b"mluc", b"cprt": b"mluc", b"wtpt": b"XYZ ", b"chad": b"sf32"}
    for i in range(count):
        tag, offset, size = struct.unpack(">4sII", icc[132 + 12 * i : 144 + 12 * i])
        kind = types.get(tag, b"XYZ " if tag.endswith(b"XYZ") else b"para")
        assert icc[offset : offset + 4] == kind, tag
        assert offset % 4 == 0
        assert offset + size <= len(icc)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    adapt = profile.profile.chromatic_adaptation  # Bradford D65 -> D50, as Lindbloom tabulates
    assert adapt is not None
    assert np.allclose(adapt[0], [[1.0478, 0.0229, -0.0501], [0.0295, 0.9905, -0.0170],
                                  [-0.0092, 0.0150, 0.7521]], atol=1e-3)  # fmt: skip
    datetime.datetime(*struct.unpack(">6H", icc[24:36]))  # a valid date (Pillow 12 misreads it)
    description = ImageCms.getProfileDescription(profile)
    assert "H.273 primaries 0.680 0.320" in description
    assert cicp.profile(nclx(12, 13)) is icc  # made once per kind of photo


@pytest.mark.parametrize(
    "given",
    [None, {}, nclx(1, 13), nclx(2, 2), nclx(12, 16), nclx(12, 18), nclx(12, 99),
     {"color_primaries": 12}, {**nclx(12, 13), "color_primary_red_y": 0.0},
     {**nclx(12, 13), "color_primary_red_x": "red"}],
)  # fmt: skip
def test_srgb_unknown_or_malformed_code_points_give_no_profile(given: Any) -> None:
    assert cicp.profile(given) is None


def test_hdr_curves_are_named_in_a_note() -> None:
    assert cicp.note(nclx(9, 16)) == "HDR colour (PQ) taken as SDR"
    assert cicp.note(nclx(9, 18)) == "HDR colour (HLG) taken as SDR"
    assert cicp.note(nclx(12, 13)) is None
    assert cicp.note(None) is None
