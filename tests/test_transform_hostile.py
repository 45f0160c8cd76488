"""Hostile inputs: each is refused with its short reason, or processed anyway, never a crash."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from PIL import Image

from pipeline.config import Settings
from pipeline.errors import ImageError
from pipeline.transform import transform
from tests import imaging as H

SMALL = Settings(max_size=64)
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n"
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def png_claiming(width: int, height: int, idat: bytes) -> bytes:
    """A greyscale 8-bit PNG with the given header size and IDAT payload."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def zlib_bomb(width: int, height: int) -> bytes:
    """All-zero rows (filter byte + pixels): inflates to width*height bytes from a few KiB."""
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return png_claiming(width, height, body)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small valid JPEG whose SOF0 header is patched to claim another size."""
    data = bytearray(H.encode(H.photo_like(64, 48), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def jpeg_with_exif(exif: bytes) -> bytes:
    return H.encode(H.quadrants(96, 64), "JPEG", quality=95, exif=exif)


def _photo_jpeg() -> bytes:
    return H.encode(H.photo_like(300, 200), "JPEG")


def _photo_png() -> bytes:
    return H.encode(H.photo_like(300, 200), "PNG")


REFUSED = {
    "zero-byte": (lambda: b"", "empty file"),
    "truncated-jpeg": (lambda: _photo_jpeg()[: len(_photo_jpeg()) // 2], "truncated JPEG"),
    "truncated-png": (lambda: _photo_png()[: len(_photo_png()) // 2], "truncated PNG"),
    "jpeg-cut-in-header": (lambda: _photo_jpeg()[:40], "truncated JPEG"),
    "png-cut-in-header": (lambda: _photo_png()[:30], "corrupt PNG header"),
    "text-named-png": (lambda: b"hello, I am a text file\n" * 10, "not an image"),
    "random-bytes": (lambda: bytes(range(256)) * 4, "not an image"),
    "eps-named-jpg": (lambda: EPS, "unsupported image format (EPS)"),
    "svg": (lambda: SVG, "unsupported image format (SVG)"),
    "pdf": (
        lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "unsupported image format (PDF)",
    ),
    "png-claiming-30000x30000": (
        lambda: png_claiming(30000, 30000, zlib.compress(b"\0" * 100)),
        "exceeds pixel limit (900 MP > 100 MP)",
    ),
    "zlib-bomb-20000x20000": (
        lambda: zlib_bomb(20000, 20000),
        "exceeds pixel limit (400 MP > 100 MP)",
    ),
    "jpeg-claiming-60000x60000": (
        lambda: jpeg_claiming(60000, 60000),
        "exceeds pixel limit (3600 MP > 100 MP)",
    ),
    "png-corrupt-idat": (
        lambda: png_claiming(100, 100, b"\x78\x9c" + bytes(range(200))),
        "corrupt image data",
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_refused_with_a_short_reason(case: tuple[object, str]) -> None:
    make, reason = case
    assert callable(make)
    with pytest.raises(ImageError) as caught:
        transform(make(), SMALL)
    assert str(caught.value) == reason


def test_pixel_cap_is_the_settings_one_not_pillows() -> None:
    data = H.encode(Image.new("L", (1000, 1000)), "PNG")
    with pytest.raises(ImageError, match=r"^exceeds pixel limit \(1 MP > 999999 px\)$"):
        transform(data, Settings(max_pixels=999_999))
    assert transform(data, Settings(max_size=10, max_pixels=1_000_000)).width == 10


def test_a_truncated_png_that_claims_a_big_size_is_truncated_not_a_crash() -> None:
    # Within the cap: Pillow allocates, decodes what is there, and reports the truncation.
    data = png_claiming(5000, 5000, zlib.compress(b"\0" * 1000))
    with pytest.raises(ImageError, match=r"^truncated PNG$"):
        transform(data, SMALL)


GARBAGE_EXIF = {
    "orientation-as-string": H.raw_exif([(0x0112, 2, 6, b"right\0")]),
    "orientation-out-of-range": H.raw_exif([(0x0112, 3, 1, b"\0\x2a")]),
    "truncated-exif-block": H.raw_exif([(0x0112, 3, 1, b"\0\x06")], truncate=20),
    "exif-not-tiff": b"Exif\0\0this is no TIFF header at all",
    "ifd-offset-out-of-range": b"Exif\0\0MM\0*\x7f\xff\xff\xff",
    "huge-entry-count": b"Exif\0\0MM\0*\0\0\0\x08\xff\xff" + bytes(40),
}


# Pillow warns "Corrupt EXIF data" on some of these; with warnings as errors the transform still
# treats the EXIF as unreadable, so the outcome is the same either way.
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.parametrize("exif", GARBAGE_EXIF.values(), ids=GARBAGE_EXIF.keys())
def test_garbage_exif_is_processed_upright_as_stored(exif: bytes) -> None:
    result = transform(jpeg_with_exif(exif), Settings(max_size=48))
    out = H.decode_rgb(result.data)
    assert result.orientation == 1
    assert out.size == (48, 32)
    assert H.mean_abs_diff(out, H.quadrants(96, 64).resize((48, 32), Image.Resampling.LANCZOS)) < 6


def test_broken_icc_in_a_jpeg_is_processed_with_a_warning() -> None:
    data = H.encode(H.photo_like(200, 100), "JPEG", icc_profile=b"\0\0\0\x80acsp" + bytes(200))
    result = transform(data, SMALL)
    assert result.warnings == ("broken ICC profile ignored",)
    assert H.decode_rgb(result.data).size == (64, 32)


HOSTILE_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    sys.path[:0] = [sys.argv[1]]
    from pipeline.config import Settings
    from pipeline.errors import ImageError
    from pipeline.transform import transform
    from tests import test_transform_hostile as T
    cases = [make() for make, _ in T.REFUSED.values()] + [T.zlib_bomb(10000, 10000)]
    cases += [T.png_claiming(5000, 5000, b"x")]
    cases += [T.jpeg_with_exif(e) for e in T.GARBAGE_EXIF.values()]
    outcomes = []
    for data in cases:
        try:
            outcomes.append(transform(data, Settings()).width)
        except ImageError as exc:
            outcomes.append(str(exc))
    # VmHWM: this process's own peak; ru_maxrss would include pytest's RSS at fork time.
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
    if hwm:
        peak = int(hwm[0].split()[1]) / 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": peak, "outcomes": outcomes}))
    """
)


def test_hostile_set_runs_in_bounded_memory() -> None:
    """Peak RSS of a fresh child over the whole hostile set plus a 100 MP all-zero PNG (exactly
    at the cap: it decodes to 100 MB of L pixels). Python + numpy + Pillow is ~60 MiB, the 100 MB
    decode is the largest legitimate allocation, so 300 MiB leaves room for one resample copy."""
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", HOSTILE_CHILD, root], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    print(f"\nhostile set peak RSS: {report['peak_mib']:.0f} MiB")
    assert report["peak_mib"] < 300
    assert report["outcomes"][-len(GARBAGE_EXIF) :] == [96] * len(GARBAGE_EXIF)
