"""--keep-metadata none|copyright|all: what EXIF and XMP reach the outputs, in real files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import pytest
from conftest import run_cli
from distributed import Client, LocalCluster
from imaging import encode, jpeg_markers, quadrants, raw_exif
from PIL import Image

import pipeline
from pipeline import metadata, outputs
from pipeline import xmp as xmp_fields
from pipeline.config import Settings
from pipeline.errors import UsageError
from pipeline.transform import transform

ARTIST, COPYRIGHT, MAKE, ORIENTATION = 0x013B, 0x8298, 0x010F, 0x0112
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATE_TAKEN, MAKER_NOTE, PIXEL_X, COLOR_SPACE = 0x9003, 0x927C, 0xA002, 0xA001
COPYRIGHT_TEXT = "© 2026 Jane Doe".encode()  # UTF-8, as phones and editors write it
MARKER = outputs.marker("fp0123456789", 123456, "1767225600000000000")
THUMBNAIL = encode(Image.new("RGB", (16, 12), (9, 99, 199)), "JPEG")
XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
  xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
  xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
  xmpRights:Marked="True" xmp:CreatorTool="Phone Camera 1.0" tiff:Orientation="6"
  photoshop:City="Lisbon">
 <dc:creator><rdf:Seq><rdf:li>Jane Doe</rdf:li></rdf:Seq></dc:creator>
 <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">© 2026 Jane Doe</rdf:li></rdf:Alt></dc:rights>
 <xmpRights:UsageTerms><rdf:Alt><rdf:li xml:lang="x-default">Web use only</rdf:li></rdf:Alt>
 </xmpRights:UsageTerms>
 <dc:description><rdf:Alt><rdf:li xml:lang="x-default">A tram</rdf:li></rdf:Alt></dc:description>
 <photoshop:Credit>Doe Photo</photoshop:Credit>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def camera_exif() -> bytes:
    """A phone's EXIF: camera, rights, orientation 6, date, maker note, size, GPS, thumbnail."""
    exif = Image.Exif()
    exif[MAKE] = "PhoneMaker"
    exif[ARTIST] = "Jane Doe"
    exif[COPYRIGHT] = COPYRIGHT_TEXT
    exif[ORIENTATION] = 6
    exif[EXIF_IFD] = {DATE_TAKEN: "2026:01:02 03:04:05", MAKER_NOTE: b"\x01" * 400,
                      PIXEL_X: 4032, COLOR_SPACE: 65535}  # fmt: skip
    exif[GPS_IFD] = {1: "N", 2: (38.0, 42.0, 5.5), 3: "W", 4: (9.0, 8.0, 7.0)}
    return with_thumbnail(exif.tobytes())


def with_thumbnail(block: bytes) -> bytes:
    """`block` (Exif\\0\\0 + a TIFF with IFD0 only, as Pillow writes it) with an IFD1 thumbnail."""
    tiff = bytearray(block[6:])
    order: Literal["big", "little"] = "big" if tiff[:2] == b"MM" else "little"

    def num(value: int, size: int) -> bytes:
        return value.to_bytes(size, order)

    count = int.from_bytes(tiff[8:10], order)
    next_at = 8 + 2 + 12 * count
    assert tiff[next_at : next_at + 4] == b"\0\0\0\0"
    ifd1 = len(tiff)
    tiff[next_at : next_at + 4] = num(ifd1, 4)
    data_at = ifd1 + 2 + 2 * 12 + 4
    tiff += num(2, 2)
    tiff += num(0x0201, 2) + num(4, 2) + num(1, 4) + num(data_at, 4)
    tiff += num(0x0202, 2) + num(4, 2) + num(1, 4) + num(len(THUMBNAIL), 4)
    tiff += b"\0\0\0\0" + THUMBNAIL
    return block[:6] + bytes(tiff)


def phone_jpeg(xmp: str = XMP) -> bytes:
    upright = quadrants(160, 120)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back
    return encode(stored, "JPEG", exif=camera_exif(), xmp=xmp.encode())


def convert(data: bytes, policy: str) -> tuple[bytes, Image.Image, tuple[str, ...]]:
    result = transform(data, Settings(max_size=80, keep_metadata=policy), comment=MARKER)
    out = Image.open(io.BytesIO(result.data))
    assert out.size == (80, 60)  # upright
    assert outputs.find_marker(result.data[:4096]) == MARKER
    return result.data, out, result.warnings


def test_none_writes_no_exif_and_the_same_bytes_as_before() -> None:
    data = phone_jpeg()
    assert THUMBNAIL in data
    out, image, _ = convert(data, "none")
    assert 0xE1 not in jpeg_markers(out)  # no APP1: neither EXIF nor XMP
    assert not image.getexif()
    assert out == transform(data, Settings(max_size=80), comment=MARKER).data
    assert Settings(keep_metadata="none").fingerprint() == Settings().fingerprint()
    assert Settings(keep_metadata="copyright").fingerprint() != Settings().fingerprint()


def test_copyright_keeps_artist_copyright_and_the_xmp_rights_only() -> None:
    out, image, _ = convert(phone_jpeg(), "copyright")
    exif = image.getexif()
    assert dict(exif) == {ARTIST: "Jane Doe", COPYRIGHT: COPYRIGHT_TEXT.decode("latin-1")}
    assert COPYRIGHT_TEXT in out  # the UTF-8 bytes exactly as the camera wrote them
    xmp = image.info["xmp"].decode()
    for kept in ("Jane Doe", "© 2026 Jane Doe", "Web use only", "Doe Photo", 'Marked="True"'):
        assert kept in xmp
    for dropped in ("CreatorTool", "Lisbon", "A tram", "Orientation"):
        assert dropped not in xmp
    assert "dc:rights" in xmp  # the usual prefixes
    assert THUMBNAIL not in out


def test_all_keeps_exif_and_gps_upright_without_thumbnail_or_maker_note() -> None:
    out, image, _ = convert(phone_jpeg(), "all")
    exif = image.getexif()
    assert exif[ORIENTATION] == 1
    assert (exif[MAKE], exif[ARTIST]) == ("PhoneMaker", "Jane Doe")
    details = exif.get_ifd(EXIF_IFD)
    assert details[DATE_TAKEN] == "2026:01:02 03:04:05"
    assert MAKER_NOTE not in details
    assert PIXEL_X not in details
    assert details[COLOR_SPACE] == 1  # sRGB, as the pixels now are
    assert exif.get_ifd(GPS_IFD)[2] == (38.0, 42.0, 5.5)
    assert THUMBNAIL not in out
    xmp = image.info["xmp"].decode()
    assert "CreatorTool" in xmp
    assert "A tram" in xmp
    assert "Orientation" not in xmp


def test_an_editors_xmp_is_kept_whole_with_the_marker_in_the_head() -> None:
    subject = "<dc:subject>" + "tag " * 5000 + "</dc:subject>\n"  # 20 kB, as an editor's
    bulky = XMP.replace("<photoshop:Credit>", subject + "<photoshop:Credit>")
    _, image, notes = convert(phone_jpeg(bulky), "all")  # convert() checks the marker
    xmp = image.info["xmp"].decode()
    assert "tag tag" in xmp
    assert "Web use only" in xmp
    assert not any("too large" in note for note in notes)


def test_an_xmp_larger_than_a_jpeg_segment_shrinks_to_its_rights() -> None:
    subject = "<dc:subject>" + "tag " * 17000 + "</dc:subject>\n"  # 68 kB: over one APP1
    bulky = XMP.replace("<photoshop:Credit>", subject + "<photoshop:Credit>")
    stored = quadrants(160, 120).transpose(Image.Transpose.ROTATE_90)
    webp = encode(stored, "WEBP", exif=camera_exif(), xmp=bulky.encode())  # no limit in WebP
    out, image, notes = convert(webp, "all")  # convert() checks the marker
    assert image.getexif()[ORIENTATION] == 1
    xmp = image.info["xmp"].decode()
    assert "Web use only" in xmp
    assert "tag tag" not in xmp
    assert any("too large" in note for note in notes)
    assert len(out) < len(bulky)


@pytest.mark.parametrize("fmt", ["WEBP", "AVIF"])
def test_webp_and_avif_carry_the_metadata(fmt: str) -> None:
    meta = metadata.capture(Image.open(io.BytesIO(phone_jpeg())), "copyright")
    data = encode(quadrants(32, 24), fmt, **metadata.save_options(meta, fmt))
    image = Image.open(io.BytesIO(data))
    assert image.getexif()[ARTIST] == "Jane Doe"
    assert b"Web use only" in image.info["xmp"]


def test_bad_metadata_is_a_note_never_a_failure() -> None:
    broken_exif = raw_exif([(ARTIST, 4, 1, b"\0\0\0\x07"), (EXIF_IFD, 4, 1, b"\0\0\x13\x88")])
    with_dtd = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    data = encode(quadrants(64, 48), "JPEG", exif=broken_exif, xmp=with_dtd.encode())
    _, image, notes = convert_any(data, "copyright")
    assert "XMP with a DTD not kept" in notes
    assert "xmp" not in image.info
    assert not image.getexif()  # a number is no Artist
    _, image, notes = convert_any(data, "all")
    assert "unreadable EXIF not kept" in notes  # the Exif IFD points past the end
    garbled = encode(quadrants(64, 48), "JPEG", xmp=b"<x:xmpmeta><unclosed")
    _, image, notes = convert_any(garbled, "all")
    assert "unreadable XMP not kept" not in notes  # `all` copies XMP as it is
    _, image, notes = convert_any(garbled, "copyright")
    assert "unreadable XMP not kept" in notes


def convert_any(data: bytes, policy: str) -> tuple[bytes, Image.Image, tuple[str, ...]]:
    result = transform(data, Settings(max_size=32, keep_metadata=policy), comment=MARKER)
    return result.data, Image.open(io.BytesIO(result.data)), result.warnings


def test_a_bad_policy_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--keep-metadata must be one of none, copyright, all"):
        Settings(keep_metadata="some")
    result = run_cli("run", "--input", tmp_path, "--keep-metadata", "some")
    assert result.code == 2
    assert "invalid choice: 'some'" in result.stderr


def exif_of(path: Path) -> Image.Exif:
    with Image.open(path) as image:
        return image.getexif()


def test_runs_keep_the_fields_and_stay_up_to_date(tmp_path: Path) -> None:
    """On a real cluster: copyright kept, a second run skips, a policy change redoes."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "tram.jpg").write_bytes(phone_jpeg())
    out = tmp_path / "out" / "tram.jpg"
    with LocalCluster(
        n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as cluster, Client(cluster) as client:  # fmt: skip

        def run(policy: str) -> dict[str, int]:
            kwargs = {"client": client, "max_size": 64, "keep_metadata": policy}
            return dict(pipeline.run(tmp_path / "in", tmp_path / "out", **kwargs).counts)

        assert run("copyright")["ok"] == 1
        exif = exif_of(out)
        assert (exif[ARTIST], exif[COPYRIGHT]) == ("Jane Doe", COPYRIGHT_TEXT.decode("latin-1"))
        written = out.stat().st_mtime_ns
        again = run("copyright")  # the marker is found: nothing is written again
        assert again["failed"] == 0, again
        assert out.stat().st_mtime_ns == written
        assert run("none")["ok"] == 1
        assert not exif_of(out)
    cli = run_cli("run", "--input", tmp_path / "in", "--output", tmp_path / "cli", "--workers",
                  "1", "--keep-metadata", "all", report=tmp_path / "r.json")  # fmt: skip
    assert cli.code == 0, cli.stderr
    assert exif_of(tmp_path / "cli" / "tram.jpg").get_ifd(GPS_IFD)[1] == "N"


def test_avif_outputs_keep_their_marker_within_reach_of_the_up_to_date_check() -> None:
    """libavif writes the EXIF ahead of the XMP that holds the marker: AVIF gets JPEG's limits."""
    captured = metadata.Captured(exif=b"E" * 300_000, rights_exif=b"R")
    assert metadata.save_options(captured, "AVIF") == {"exif": b"R"}
    assert metadata.save_options(captured, "WEBP") == {"exif": b"E" * 300_000}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be", "utf-32"])
def test_xmp_with_a_dtd_is_never_kept_in_any_encoding(encoding: str) -> None:
    packet = XMP.replace("<x:xmpmeta", '<!DOCTYPE x [<!ENTITY e "boom">]><x:xmpmeta', 1)
    notes: list[str] = []
    assert xmp_fields.upright(packet.encode(encoding), notes) == b""
    assert notes == ["XMP with a DTD not kept"]
