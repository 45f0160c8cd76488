"""The encoders of the outputs, Pillow's own: JPEG, WebP and AVIF, each carrying its marker.

Every output carries the marker that names its settings and its source (`outputs.marker`) near
the start of the file, where an up-to-date check reads it: in a JPEG a COM segment, in WebP and
AVIF an XML comment inside the XMP packet (`outputs.marker_xmp`), which libavif stores before the
pixel data and which is moved here ahead of the image data of a WebP (libwebp's readers take
the chunks in any order before the image). Nothing else rides along: `info` is cleared, so no
EXIF, ICC or old comment is copied from the source; the caller's `options` (a metadata policy's
`exif=`/`xmp=`) are the only extras. Untagged output is sRGB by definition on the web.

Encoder effort, measured in CPU time per 1920 px photo (tests/data/photos; a q85 JPEG: 15 ms):
WebP `method` 1 takes 58 ms where the default 4 takes 171 ms for files 9% smaller (0: 48 ms,
+4%; 2: 77 ms, -5%); AVIF `speed` 9 takes 103 ms where the default 6 takes 980 ms for files 7%
smaller (8: 333 ms, -3%). The decode and resize of a photo take ~110 ms, so one WebP adds about
half of that, and an AVIF about as much again. AVIF runs on one thread: the cluster already
runs one image per core.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from PIL import Image

from pipeline import outputs
from pipeline.config import Settings

JPEG_SUBSAMPLING = "4:2:0"
WEBP_METHOD = 1
AVIF_SPEED = 9
#: The Pillow format of each output format name.
PILLOW_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}


def encode(
    im: Image.Image,
    fmt: str,
    settings: Settings,
    marker: bytes,
    options: Mapping[str, Any] | None = None,
) -> bytes:
    """`im` (RGB) encoded as `fmt` at that format's quality in `settings`, with `marker`."""
    im.info = {}
    extra = dict(options or {})
    buffer = io.BytesIO()
    if fmt == "jpeg":
        im.save(
            buffer,
            "JPEG",
            quality=settings.quality,
            optimize=True,
            subsampling=JPEG_SUBSAMPLING,
            comment=marker,
            **extra,
        )
        return _comment_first(buffer.getvalue()) if extra else buffer.getvalue()
    xmp = outputs.marker_xmp(marker, extra.pop("xmp", None))
    if fmt == "webp":
        im.save(buffer, "WEBP", quality=settings.webp_quality, method=WEBP_METHOD, xmp=xmp, **extra)
        return _xmp_first(buffer.getvalue())
    if fmt == "avif":
        im.save(
            buffer,
            "AVIF",
            quality=settings.avif_quality,
            speed=AVIF_SPEED,
            max_threads=1,
            xmp=xmp,
            **extra,
        )
        return buffer.getvalue()
    raise ValueError(f"unknown output format {fmt!r}")


def _comment_first(data: bytes) -> bytes:
    """The JPEG with its COM segment moved up to just after the APP0 (JFIF) one.

    Pillow writes the comment after EXIF and XMP, which can take the marker past the head an
    up-to-date check reads; readers take the header segments in any order.
    """
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] not in (0xDA, 0xD9):
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        segments.append(data[pos:end])
        pos = end
    comments = [s for s in segments if s[1] == 0xFE]
    if not comments:
        return data
    rest = [s for s in segments if s[1] != 0xFE]
    lead = 1 if rest and rest[0][1] == 0xE0 else 0
    ordered = rest[:lead] + comments + rest[lead:]
    return data[:2] + b"".join(ordered) + data[pos:]


def _xmp_first(data: bytes) -> bytes:
    """The WebP with its XMP chunk moved to just after VP8X (and ICCP), ahead of the image."""
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + size + (size & 1)
        chunks.append(data[pos:end])
        pos = end
    xmp = [c for c in chunks if c[:4] == b"XMP "]
    if not xmp or chunks[0][:4] != b"VP8X":
        return data
    rest = [c for c in chunks if c[:4] != b"XMP "]
    lead = 2 if len(rest) > 1 and rest[1][:4] == b"ICCP" else 1
    return data[:12] + b"".join(rest[:lead] + xmp + rest[lead:]) + data[pos:]
