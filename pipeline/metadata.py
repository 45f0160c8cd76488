"""`--keep-metadata none|copyright|all`: which EXIF and XMP of an input ride along to its outputs.

- `none` (default): outputs carry no EXIF and no XMP.
- `copyright`: the rights fields only: EXIF Artist and Copyright; from XMP dc:creator,
  dc:rights, every xmpRights property (UsageTerms, WebStatement, Marked, Owner...),
  photoshop:Credit, Source and AuthorsPosition, Iptc4xmpCore:CreatorContactInfo, the PLUS
  copyright owner, licensor and image creator, and Creative Commons (cc:) properties.
- `all`: the EXIF (camera, exposure, dates, GPS position too) with the orientation set to 1
  (outputs are upright), without the thumbnail, the maker notes (vendor blobs whose internal
  offsets break when moved), the original's pixel dimensions and the TIFF layout tags; the
  colour space tag says sRGB. The XMP as it is, without its orientation.
Colour is always converted to sRGB and no ICC profile is embedded, whatever the policy.

A JPEG holds EXIF and XMP in one APP1 segment of at most 64 KiB each, so each gets at most
SEGMENT_BUDGET bytes in a JPEG (a larger XMP comes from PNG, WebP, TIFF or HEIC sources): beyond
that XMP shrinks to its rights fields, then EXIF to Artist and Copyright, and the record's
warnings say so (a Lightroom export's XMP with its edit history is 5-50 KiB: it fits). The
pipeline's marker is unaffected: `pipeline.encode` puts the comment segment that holds it
first. AVIF outputs get the same limits: libavif writes the EXIF ahead of the XMP packet that
holds the marker, which the up-to-date check must find within `outputs.MARKER_SPAN`. WebP
outputs get all of it (their XMP is moved ahead of the EXIF).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image, TiffTags

from pipeline import xmp as xmp_fields

ARTIST, COPYRIGHT, ORIENTATION = 0x013B, 0x8298, 0x0112
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
#: Bytes of EXIF, and of XMP, a JPEG or AVIF output may carry (see the module's docstring): each
#: must fit one JPEG APP1 segment (65,533 bytes less its identifier).
SEGMENT_BUDGET = 65_000
#: IFD0 tags that describe the source file's layout or colour, not the picture.
_LAYOUT_TAGS = frozenset(
    {0x00FE, 0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x010A, 0x0111, 0x0115, 0x0116, 0x0117}
    | {0x011C, 0x0122, 0x0123, 0x013D, 0x0140, 0x0142, 0x0143, 0x0144, 0x0145, 0x014A, 0x0152}
    | {0x0153, 0x0201, 0x0202, 0x0211, 0x0212, 0x0213, 0x02BC, 0x83BB, 0x8649, 0x8773, 0x935C}
)
_COLOR_SPACE = 0xA001
#: Exif IFD tags not kept: the maker note, the original's pixel size, the interoperability IFD.
_DROPPED_DETAILS = frozenset({0x927C, 0xA002, 0xA003, 0xA005})


@dataclass(frozen=True)
class Captured:
    """What the outputs of an input carry: EXIF and XMP, in full and only the rights fields."""

    exif: bytes = b""
    xmp: bytes = b""
    rights_exif: bytes = b""
    rights_xmp: bytes = b""


def capture(im: Image.Image, policy: str, notes: list[str] | None = None) -> Captured | None:
    """The metadata `policy` keeps from the opened (not yet loaded) `im`; None for `none`.

    Unreadable metadata is dropped with a note, never an error.
    """
    if policy == "none":
        return None
    notes = [] if notes is None else notes
    exif = _exif(im, notes)
    raw_xmp = _raw_xmp(im)
    # with `all` the rights are only a fallback for small JPEG headers: no notes about them
    rights_xmp = xmp_fields.rights(raw_xmp, notes if policy == "copyright" else [])
    rights_exif = _encoded(_rights_exif(exif), notes)
    if policy == "copyright":
        found = Captured(rights_exif, rights_xmp, rights_exif, rights_xmp)
    else:
        full_xmp = xmp_fields.upright(raw_xmp, notes)
        full_exif = _encoded(_all_exif(exif), notes) or rights_exif
        found = Captured(full_exif, full_xmp, rights_exif, rights_xmp)
    if max(len(found.exif), len(found.xmp)) > SEGMENT_BUDGET:
        notes.append("metadata too large for a JPEG header: JPEG and AVIF outputs keep less of it")
    return found


def save_options(captured: Captured | None, fmt: str) -> dict[str, Any]:
    """The `Image.save` keywords that write `captured` in format `fmt` (JPEG, WEBP, AVIF)."""
    if captured is None:
        return {}
    exif, xmp = captured.exif, captured.xmp
    if fmt in ("JPEG", "AVIF"):  # libavif writes the EXIF ahead of the XMP with the marker
        exif, xmp = _fit_segments(captured)
    options: dict[str, Any] = {}
    if exif:
        options["exif"] = exif
    if xmp:
        options["xmp"] = xmp
    return options


def _fit_segments(captured: Captured) -> tuple[bytes, bytes]:
    """The most of `captured` that fits SEGMENT_BUDGET, dropping XMP's extras first."""
    for exif, xmp in (
        (captured.exif, captured.xmp),
        (captured.exif, captured.rights_xmp),
        (captured.rights_exif, captured.rights_xmp),
        (captured.rights_exif, b""),
    ):
        if max(len(exif), len(xmp)) <= SEGMENT_BUDGET:
            return exif, xmp
    return b"", b""


def _exif(im: Image.Image, notes: list[str]) -> Image.Exif:
    try:
        exif = im.getexif()
        exif.get_ifd(EXIF_IFD)  # parse the sub-IFDs now, so garbage shows here
        exif.get_ifd(GPS_IFD)
        return exif
    except Exception:  # garbage EXIF: Pillow may raise nearly anything
        notes.append("unreadable EXIF not kept")
        return Image.Exif()


def _raw_xmp(im: Image.Image) -> bytes:
    value = im.info.get("xmp")
    if isinstance(value, str):
        return value.encode("utf-8")
    return value if isinstance(value, bytes) else b""


def _rights_exif(exif: Image.Exif) -> Image.Exif:
    out = Image.Exif()
    for tag in (ARTIST, COPYRIGHT):
        value = _value(tag, exif.get(tag))
        if value and isinstance(value, bytes):  # text only: a number there is garbage
            out[tag] = value
    return out


def _all_exif(exif: Image.Exif) -> Image.Exif:
    out = Image.Exif()
    for tag, value in exif.items():
        if tag not in _LAYOUT_TAGS and tag not in (EXIF_IFD, GPS_IFD):
            out[tag] = _value(tag, value)
    if ORIENTATION in exif:
        out[ORIENTATION] = 1
    details = {
        tag: _value(tag, value, EXIF_IFD)
        for tag, value in exif.get_ifd(EXIF_IFD).items()
        if tag not in _DROPPED_DETAILS
    }
    if details:
        if _COLOR_SPACE in details:
            details[_COLOR_SPACE] = 1
        out[EXIF_IFD] = details
    gps = {tag: _value(tag, value, GPS_IFD) for tag, value in exif.get_ifd(GPS_IFD).items()}
    if gps:
        out[GPS_IFD] = gps
    return out


def _value(tag: int, value: Any, group: int | None = None) -> Any:
    """An EXIF text as the bytes it was read from (Pillow reads text as Latin-1 and would write
    it back as ASCII, replacing every other character)."""
    if isinstance(value, str) and TiffTags.lookup(tag, group).type == TiffTags.ASCII:
        return value.encode("latin-1", "replace")
    return value


def _encoded(exif: Image.Exif, notes: list[str]) -> bytes:
    if not len(exif):
        return b""
    try:
        return exif.tobytes()
    except Exception:  # a value Pillow cannot write back (odd types in a camera's EXIF)
        notes.append("EXIF that cannot be written back not kept")
        return b""
