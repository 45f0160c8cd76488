"""XMP packets for `--keep-metadata`: the rights fields of a packet, and a packet made upright.

XMP comes from untrusted files: a packet with a DTD (where entity expansion attacks live) is
never parsed, and a packet that does not parse is dropped with a note.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

X, RDF = "adobe:ns:meta/", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
XMP_RIGHTS = "http://ns.adobe.com/xap/1.0/rights/"
PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
PLUS = "http://ns.useplus.org/ldf/xmp/1.0/"
CC = "http://creativecommons.org/ns#"
PREFIXES = {
    "x": X,
    "rdf": RDF,
    "dc": DC,
    "xmpRights": XMP_RIGHTS,
    "photoshop": PHOTOSHOP,
    "Iptc4xmpCore": IPTC_CORE,
    "plus": PLUS,
    "cc": CC,
}
#: (namespace, property) kept by the `copyright` policy; None: every property of the namespace.
RIGHTS = frozenset(
    {
        (DC, "creator"),
        (DC, "rights"),
        (XMP_RIGHTS, None),
        (PHOTOSHOP, "Credit"),
        (PHOTOSHOP, "Source"),
        (PHOTOSHOP, "AuthorsPosition"),
        (IPTC_CORE, "CreatorContactInfo"),
        (PLUS, "CopyrightOwner"),
        (PLUS, "Licensor"),
        (PLUS, "ImageCreator"),
        (CC, None),
    }
)
PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
PACKET_END = '<?xpacket end="w"?>'
_ORIENTATION = (
    re.compile(rb'\s*tiff:Orientation\s*=\s*["\'][0-9]["\']'),
    re.compile(rb"<tiff:Orientation>\s*[0-9]\s*</tiff:Orientation>"),
)


def rights(packet: bytes, notes: list[str]) -> bytes:
    """A new XMP packet with only the rights properties of `packet` (b"" when it has none)."""
    if not packet or _has_dtd(packet, notes):
        return b""
    root = _parse(packet, notes)
    if root is None:
        return b""
    attributes: dict[str, str] = {}
    children: list[ET.Element] = []
    for description in root.iter(f"{{{RDF}}}Description"):
        attributes.update((k, v) for k, v in description.attrib.items() if _is_rights(k))
        children += [child for child in description if _is_rights(child.tag)]
    if not attributes and not children:
        return b""
    return _packet(attributes, children)


def upright(packet: bytes, notes: list[str]) -> bytes:
    """`packet` without a tiff:Orientation property (the outputs are upright); b"" for a packet
    with a DTD, which XMP never needs and a reader of the output might expand."""
    if not packet or _has_dtd(packet, notes):
        return b""
    for pattern in _ORIENTATION:
        packet = pattern.sub(b"", packet)
    return packet


def _has_dtd(packet: bytes, notes: list[str]) -> bool:
    ascii_only = packet.replace(b"\x00", b"")  # a UTF-16 or UTF-32 packet's markup, as ASCII
    if b"<!DOCTYPE" in ascii_only or b"<!ENTITY" in ascii_only:
        notes.append("XMP with a DTD not kept")
        return True
    return False


def _parse(packet: bytes, notes: list[str]) -> ET.Element | None:
    try:
        return ET.fromstring(packet.rstrip(b"\x00 \t\r\n"))
    except ET.ParseError:
        notes.append("unreadable XMP not kept")
        return None


def _is_rights(name: str) -> bool:
    if not name.startswith("{"):
        return False
    namespace, _, local = name[1:].partition("}")
    return (namespace, local) in RIGHTS or (namespace, None) in RIGHTS


def _packet(attributes: dict[str, str], children: list[ET.Element]) -> bytes:
    for prefix, uri in PREFIXES.items():  # idempotent; gives the usual prefixes on output
        ET.register_namespace(prefix, uri)
    meta = ET.Element(f"{{{X}}}xmpmeta")
    rdf = ET.SubElement(meta, f"{{{RDF}}}RDF")
    description = ET.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})
    description.attrib.update(attributes)
    description.extend(children)
    text = PACKET_BEGIN + ET.tostring(meta, encoding="unicode") + PACKET_END
    return text.encode("utf-8")
