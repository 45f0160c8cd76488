"""Test helpers for the transform: image generators, encoders, an independent reference, metrics.

The reference is deliberately naive and independent of pipeline.transform: decode everything,
exif_transpose, convert to RGB, one LANCZOS resize. Metrics are on 8-bit RGB.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

#: Real photographs, downscaled, with their licences: tests/data/photos/SOURCES.md.
PHOTO_DIR = Path(__file__).resolve().parent / "data" / "photos"

#: Colours of the four quadrants of the orientation fixture (top-left, top-right, bottom-left,
#: bottom-right), chosen so that every flip and rotation moves at least one of them.
QUADRANTS = ((220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 40))

#: The transpose that *stores* an upright image so that EXIF orientation n shows it upright.
STORE_FOR_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def real_photos() -> list[Path]:
    """The camera photos kept in the repository (2048 px long side, JPEG quality 90)."""
    return sorted(PHOTO_DIR.glob("*.jpg"))


def quadrants(width: int, height: int) -> Image.Image:
    """An asymmetric upright RGB image: four coloured quadrants plus a marker in the top-left."""
    im = Image.new("RGB", (width, height))
    hw, hh = width // 2, height // 2
    for (x, y), colour in zip(((0, 0), (hw, 0), (0, hh), (hw, hh)), QUADRANTS, strict=True):
        im.paste(colour, (x, y, x + (width - hw if x else hw), y + (height - hh if y else hh)))
    im.paste((255, 255, 255), (width // 16, height // 16, width // 4, height // 8))
    return im


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus fine noise texture and some edges: photo-like, compressible-ish."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    fx, fy = x / max(width, 1), y / max(height, 1)
    base = np.stack(
        [
            128 + 90 * np.sin(6.0 * fx + 2 * fy),
            128 + 80 * np.cos(4.0 * fy + 3 * fx * fy),
            110 + 70 * np.sin(3.0 * (fx + fy)) * np.cos(5 * fy),
        ],
        axis=-1,
    )
    texture = rng.normal(0, 12, (height, width, 1)).astype(np.float32)
    edges = ((x // max(width // 7, 1) + y // max(height // 5, 1)) % 2 == 0)[..., None] * 25.0
    pixels = np.clip(base + texture + edges, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()


def with_orientation(upright: Image.Image, orientation: int) -> tuple[Image.Image, Image.Exif]:
    """The stored (transposed) image and an EXIF block whose orientation undoes it."""
    method = STORE_FOR_ORIENTATION[orientation]
    stored = upright if method is None else upright.transpose(method)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return stored, exif


def reference(data: bytes, size: tuple[int, int]) -> Image.Image:
    """The naive full-decode reference at an exact size."""
    with Image.open(io.BytesIO(data)) as im:
        upright = ImageOps.exif_transpose(im)
        assert upright is not None
        rgb = upright.convert("RGB")
    return rgb.resize(size, Image.Resampling.LANCZOS)


def decode_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB", im.mode
        return im.copy()


def psnr(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size, (a.size, b.size)
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size, (a.size, b.size)
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    return float(np.mean(np.abs(x - np.asarray(b.convert("RGB"), dtype=np.float64))))


def jpeg_markers(data: bytes) -> list[int]:
    """The marker bytes of a JPEG's header segments, up to and including SOS."""
    markers, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return markers


# -- hand-made ICC profiles (no profile files ship with the OS or with Pillow) -----------------

D50 = (0.9642, 1.0, 0.8249)
#: Adobe RGB (1998) colorants adapted to D50, as in Adobe's own profile; gamma 563/256.
ADOBE_COLORANTS = (
    (0.60974, 0.31111, 0.01947),
    (0.20528, 0.62567, 0.06087),
    (0.14919, 0.06322, 0.74457),
)
ADOBE_GAMMA = 563 / 256
ADOBE_TO_XYZ_D65 = np.array(
    [
        [0.5767309, 0.1855540, 0.1881852],
        [0.2973769, 0.6273491, 0.0752741],
        [0.0270343, 0.0706872, 0.9911085],
    ]
)
XYZ_D65_TO_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


def _s15(value: float) -> bytes:
    return round(value * 65536).to_bytes(4, "big", signed=True)


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _gamma_tag(gamma: float) -> bytes:
    return (
        b"curv\0\0\0\0" + (1).to_bytes(4, "big") + round(gamma * 256).to_bytes(2, "big") + b"\0\0"
    )


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode() + b"\0"
    body = b"desc\0\0\0\0" + len(ascii_text).to_bytes(4, "big") + ascii_text
    return body + b"\0" * (4 + 4 + 2 + 1 + 67) + b"\0" * (-len(body) % 4)


def icc_profile(device_class: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    """An ICC v2.1 profile from its tags (enough for LittleCMS)."""
    table, blobs = b"", b""
    offset = 128 + 4 + 12 * len(tags)
    for signature, blob in tags.items():
        blob += b"\0" * (-len(blob) % 4)
        table += signature + (offset + len(blobs)).to_bytes(4, "big") + len(blob).to_bytes(4, "big")
        blobs += blob
    size = offset + len(blobs)
    header = (
        size.to_bytes(4, "big")
        + b"\0\0\0\0"
        + bytes([2, 0x10, 0, 0])
        + device_class
        + space
        + pcs
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + (0).to_bytes(4, "big")
        + b"".join(_s15(v) for v in D50)
    )
    header += b"\0" * (128 - len(header))
    return header + len(tags).to_bytes(4, "big") + table + blobs


def adobe_rgb_profile() -> bytes:
    tags = {b"desc": _desc_tag("Adobe RGB (1998)-like test profile"), b"wtpt": _xyz_tag(D50)}
    for channel, colorant in zip((b"r", b"g", b"b"), ADOBE_COLORANTS, strict=True):
        tags[channel + b"XYZ"] = _xyz_tag(colorant)
        tags[channel + b"TRC"] = _gamma_tag(ADOBE_GAMMA)
    return icc_profile(b"mntr", b"RGB ", b"XYZ ", tags)


def gray_profile(gamma: float) -> bytes:
    tags = {
        b"desc": _desc_tag(f"gray gamma {gamma}"),
        b"wtpt": _xyz_tag(D50),
        b"kTRC": _gamma_tag(gamma),
    }
    return icc_profile(b"mntr", b"GRAY", b"XYZ ", tags)


def constant_cmyk_profile(lab: tuple[int, int, int]) -> bytes:
    """A CMYK input profile that maps every (non-paper-white) colour to one 8-bit-encoded Lab."""
    identity = bytes(range(256))
    matrix = b"".join(_s15(1.0 if i % 4 == 0 else 0.0) for i in range(9))
    constant = b"".join(bytes([v]) * 256 for v in lab)
    lut = b"mft1\0\0\0\0" + bytes([4, 3, 2, 0]) + matrix + identity * 4 + bytes(lab) * 16 + constant
    return icc_profile(b"scnr", b"CMYK", b"Lab ", {b"desc": _desc_tag("constant"), b"A2B0": lut})


def adobe_to_srgb(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Independent colour maths: Adobe RGB -> XYZ (D65) -> sRGB, 8 bits."""
    linear = (np.array(rgb, dtype=np.float64) / 255) ** ADOBE_GAMMA
    srgb = np.clip(XYZ_D65_TO_SRGB @ (ADOBE_TO_XYZ_D65 @ linear), 0, 1)
    encoded = np.where(srgb <= 0.0031308, 12.92 * srgb, 1.055 * srgb ** (1 / 2.4) - 0.055)
    r, g, b = (round(v * 255) for v in encoded)
    return r, g, b


def mean_rgb(im: Image.Image) -> tuple[float, float, float]:
    r, g, b = np.asarray(im.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return float(r), float(g), float(b)


def raw_exif(entries: list[tuple[int, int, int, bytes]], *, truncate: int | None = None) -> bytes:
    """An APP1 EXIF payload (big-endian TIFF) with arbitrary (tag, type, count, value) entries.

    Values of more than 4 bytes are stored after the IFD; `truncate` cuts the payload short.
    """
    ifd_size = 2 + 12 * len(entries) + 4
    table, extra = b"", b""
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            field = value.ljust(4, b"\0")
        else:
            field = (8 + ifd_size + len(extra)).to_bytes(4, "big")
            extra += value
        table += tag.to_bytes(2, "big") + kind.to_bytes(2, "big") + count.to_bytes(4, "big") + field
    tiff = b"MM\0*" + (8).to_bytes(4, "big") + len(entries).to_bytes(2, "big") + table
    payload = b"Exif\0\0" + tiff + b"\0\0\0\0" + extra
    return payload if truncate is None else payload[:truncate]


def gradient16(mode: str, width: int = 256, height: int = 32) -> Image.Image:
    """A 16-bit grey gradient 0..65535 in the given byte order."""
    row = np.linspace(0, 65535, width)
    big_endian = mode == "I;16B"
    data = np.tile(row, (height, 1)).astype(">u2" if big_endian else "<u2").tobytes()
    return Image.frombytes(mode, (width, height), data)
