"""Colour given by code points instead of an ICC profile (HEIC's `nclx` box), as an ICC profile.

A HEIF file states its colour either with an ICC profile (iPhones: Display P3) or with the code
points of ITU-T H.273 in an `nclx` box: primaries, transfer curve, matrix. pillow-heif gives the
latter in `info["nclx_profile"]`, with the primaries' chromaticities already worked out. Phones
that store wide-gamut photos this way (Display P3: primaries 12) would come out washed out if
their pixels were taken for sRGB, so `profile` turns the code points into a small RGB display
profile that the usual ICC step converts to sRGB.

- Primaries 1 (BT.709, which sRGB shares) and 2 (unspecified, taken as 1) with an sRGB curve
  need nothing: None.
- The transfer curves of BT.709, BT.601 and BT.2020 (1, 6, 14, 15) are taken as sRGB's (13), as
  still-image viewers render them (macOS ColorSync does the same), and so is 2 (unspecified).
  Gamma 2.2 (4), 2.8 (5) and linear (8) are exact. HDR curves (PQ 16, HLG 18) and the rest give
  None: the pixels are taken as they come (pillow-heif has already scaled them to 8 bits)
  rather than guessed at.

The profile is ICC v4: D50 white, the colorants adapted from the file's white point with the
Bradford transform (the `chad` tag says which), and parametric curves (`para`).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

Matrix = tuple[tuple[float, ...], ...]  # 3 x 3, rows

SRGB_PRIMARIES = (1, 2)  # BT.709 (sRGB's own) and unspecified
#: BT.709's chromaticities (red, green, blue, white: x, y), sRGB's too (H.273, table 2)
BT709_XY = (0.640, 0.330, 0.300, 0.600, 0.150, 0.060, 0.3127, 0.3290)
SRGB_CURVES = (1, 2, 6, 13, 14, 15)  # transfer codes read with sRGB's curve
#: H.273 transfer code -> ICC parametric curve (function type, parameters).
CURVES: dict[int, tuple[int, tuple[float, ...]]] = {
    **dict.fromkeys(SRGB_CURVES, (3, (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))),
    4: (0, (2.2,)),
    5: (0, (2.8,)),
    8: (0, (1.0,)),
}
HDR_CURVES = {16: "PQ", 18: "HLG"}
D50 = (0.9642, 1.0, 0.8249)  # the ICC profile connection space's white (ICC.1:2022, 7.2.16)
BRADFORD: Matrix = (
    (0.8951, 0.2664, -0.1614),
    (-0.7502, 1.7135, 0.0367),
    (0.0389, -0.0685, 1.0296),
)


def profile(nclx: Mapping[str, Any] | None) -> bytes | None:
    """The ICC profile that the code points in `nclx` describe, or None when sRGB serves."""
    if not nclx:
        return None
    try:
        primaries = int(nclx["color_primaries"])
        transfer = int(nclx["transfer_characteristics"])
        xy = tuple(
            float(nclx[f"color_primary_{c}_{a}"])
            for c in ("red", "green", "blue", "white")
            for a in ("x", "y")
        )
    except (KeyError, TypeError, ValueError):
        return None
    if transfer not in CURVES:
        return None
    if primaries in SRGB_PRIMARIES:
        if transfer in SRGB_CURVES:
            return None
        xy = BT709_XY
    if not all(0.0 < v < 1.0 for v in xy):
        return None
    return _profile(xy, transfer)


def note(nclx: Mapping[str, Any] | None) -> str | None:
    """What the report should say about these code points: an HDR curve shown as SDR."""
    curve = HDR_CURVES.get((nclx or {}).get("transfer_characteristics", 0))
    return f"HDR colour ({curve}) taken as SDR" if curve else None


@lru_cache(maxsize=16)
def _profile(xy: tuple[float, ...], transfer: int) -> bytes:
    rgb_to_xyz, white = _rgb_to_xyz(xy)
    adapt = _bradford(white, D50)
    colorants = _mul(adapt, rgb_to_xyz)
    curve = _para(*CURVES[transfer])
    description = f"H.273 primaries {_short(xy)}, transfer {transfer}"
    tags = [
        (b"desc", _mluc(description)),
        (b"cprt", _mluc("No copyright, use freely")),
        (b"wtpt", _xyz(D50)),
        (b"chad", b"sf32\0\0\0\0" + _sf32(v for row in adapt for v in row)),
        (b"rXYZ", _xyz(tuple(row[0] for row in colorants))),
        (b"gXYZ", _xyz(tuple(row[1] for row in colorants))),
        (b"bXYZ", _xyz(tuple(row[2] for row in colorants))),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    return _assemble(tags)


def _rgb_to_xyz(xy: Sequence[float]) -> tuple[Matrix, tuple[float, float, float]]:
    """The RGB -> XYZ matrix of these chromaticities (white Y = 1), and the white's XYZ."""
    rx, ry, gx, gy, bx, by, wx, wy = xy
    columns = [(x / y, 1.0, (1 - x - y) / y) for x, y in ((rx, ry), (gx, gy), (bx, by))]
    primaries: Matrix = tuple(tuple(col[i] for col in columns) for i in range(3))
    white = (wx / wy, 1.0, (1 - wx - wy) / wy)
    scale = _solve(primaries, white)
    matrix = tuple(tuple(primaries[i][j] * scale[j] for j in range(3)) for i in range(3))
    return matrix, white


def _bradford(source: Sequence[float], target: Sequence[float]) -> Matrix:
    """The Bradford chromatic adaptation from white `source` to white `target` (XYZ)."""
    s, t = _apply(BRADFORD, source), _apply(BRADFORD, target)
    diagonal = tuple(tuple(t[i] / s[i] if i == j else 0.0 for j in range(3)) for i in range(3))
    return _mul(_inverse(BRADFORD), _mul(diagonal, BRADFORD))


def _apply(m: Matrix, v: Sequence[float]) -> tuple[float, float, float]:
    return (
        sum(m[0][k] * v[k] for k in range(3)),
        sum(m[1][k] * v[k] for k in range(3)),
        sum(m[2][k] * v[k] for k in range(3)),
    )


def _mul(a: Matrix, b: Matrix) -> Matrix:
    return tuple(
        tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)) for i in range(3)
    )


def _inverse(m: Matrix) -> Matrix:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return (
        ((e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det),
        ((f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det),
        ((d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det),
    )


def _solve(m: Matrix, v: Sequence[float]) -> tuple[float, float, float]:
    return _apply(_inverse(m), v)


def _short(xy: Sequence[float]) -> str:
    return " ".join(f"{v:.3f}" for v in xy)


# -- ICC encoding (ICC.1:2022: s15Fixed16Number, XYZType, parametricCurveType, mluc) -----------


def _sf32(values: Any) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _xyz(v: Sequence[float]) -> bytes:
    return b"XYZ \0\0\0\0" + _sf32(v)


def _para(function: int, params: Sequence[float]) -> bytes:
    return b"para\0\0\0\0" + struct.pack(">HH", function, 0) + _sf32(params)


def _mluc(text: str) -> bytes:
    encoded = text.encode("utf-16-be")
    return (
        b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(encoded), 28) + encoded
    )


def _assemble(tags: list[tuple[bytes, bytes]]) -> bytes:
    table_size = 4 + 12 * len(tags)
    offset, entries, body = 128 + table_size, [], b""
    for signature, data in tags:
        entries.append(struct.pack(">4sII", signature, offset + len(body), len(data)))
        body += data + b"\0" * (-len(data) % 4)
    total = 128 + table_size + len(body)
    header = (
        struct.pack(">I4sI4s4s4s", total, b"\0\0\0\0", 0x04300000, b"mntr", b"RGB ", b"XYZ ")
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)  # date and time: any valid one will do
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual rendering intent
        + _sf32(D50)
        + b"\0" * 4  # creator
        + b"\0" * 16  # profile ID: not computed
        + b"\0" * 28
    )
    return header + struct.pack(">I", len(tags)) + b"".join(entries) + body
