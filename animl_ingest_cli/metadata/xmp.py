"""XMP packets (JPEG APP1 `http://ns.adobe.com/xap/1.0/`) read as exiftool 12.57 names them.

exiftool prints XMP properties in the XMP group under tag names that often equal the EXIF ones
(`tiff:Make` -> Make, `exif:DateTimeOriginal` -> DateTimeOriginal, `aux:SerialNumber` and
`exifEX:BodySerialNumber` -> SerialNumber), so in the ingest view (first non-empty value) an XMP
value counts when its segment comes before the EXIF one, or when EXIF lacks the tag.

What is read: the properties of every `rdf:Description` (as attributes or as simple elements),
language alternatives (the `x-default` entry, else the first), bags and sequences (one item: the
item; more: a list, as exiftool's JSON has it), and nested structures, named as exiftool
flattens them (structure name + field name). Dates take exiftool's EXIF form
(`2019-03-04T05:06:07` -> `2019:03:04 05:06:07`). Other print conversions exiftool applies to
XMP values (Orientation names, rationals as decimals...) are not reproduced: no ingest field
needs them (docs/metadata.md). A packet with a DTD is not read at all (entity expansion).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from animl_ingest_cli.metadata.exif import Tag
from animl_ingest_cli.metadata.text import fix_utf8

MAX_XMP_TAGS = 2000
_MAX_DEPTH = 8
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
_SKIP_NS = {RDF, XML_NS, "adobe:ns:meta/"}

_NAMESPACES = {
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://ns.adobe.com/exif/1.0/aux/": "aux",
    "http://cipa.jp/exif/1.0/": "exifEX",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://ns.adobe.com/xap/1.0/mm/": "xmpMM",
}
# exiftool's names where they differ from the property name with its first letter capitalised.
_RENAMED = {
    ("tiff", "ImageLength"): "ImageHeight",
    ("exif", "PixelXDimension"): "ExifImageWidth", ("exif", "PixelYDimension"): "ExifImageHeight",
    ("exif", "ISOSpeedRatings"): "ISO", ("exif", "ExposureBiasValue"): "ExposureCompensation",
    ("exif", "FocalLengthIn35mmFilm"): "FocalLengthIn35mmFormat",
    ("exifEX", "BodySerialNumber"): "SerialNumber", ("exifEX", "CameraOwnerName"): "OwnerName",
    ("exifEX", "PhotographicSensitivity"): "ISO", ("exifEX", "LensSpecification"): "LensInfo",
}
# Namespaces whose every tag has priority 0 in exiftool ("not as reliable as actual EXIF tags"),
# and single tags with priority 0 (or Avoid) elsewhere; properties exiftool has no table entry for
# are priority 0 too. Everything else is 1.
_LOW_PRIORITY_NS = {"tiff", "exif", "exifEX"}
_LOW_PRIORITY_TAGS = {("aux", "SerialNumber"), ("aux", "OwnerName"), ("aux", "LensSerialNumber"),
                      ("aux", "LensID"), ("xmp", "CreateDate"), ("xmp", "ModifyDate")}
_DATE_TAGS = {("exif", "DateTimeOriginal"), ("exif", "DateTimeDigitized"), ("tiff", "DateTime"),
              ("xmp", "CreateDate"), ("xmp", "ModifyDate"), ("xmp", "MetadataDate"),
              ("photoshop", "DateCreated"), ("exifEX", "DateTimeOriginal")}
_FULL_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}:\d{2})(:\d{2})?\s*(\S*)\Z")
_PARTIAL_DATE = re.compile(r"\d{4}(-\d{2}){0,2}")


def convert_date(value: str, known_date: bool) -> str:
    """exiftool's ConvertXMPDate: a full date-time always; a date alone only for date tags."""
    match = _FULL_DATE.match(value)
    if match:
        y, mo, d, hm, s, rest = match.groups()
        return f"{y}:{mo}:{d} {hm}{s or ''}{rest}"
    if known_date and _PARTIAL_DATE.match(value):
        return value.replace("-", ":")
    return value


def read_xmp(packet: bytes) -> tuple[list[Tag], list[str]]:
    """The XMP group's tags in document order, and problems; never raises."""
    if re.search(rb"<!(DOCTYPE|ENTITY)", packet[:65536], re.I):
        return [], ["XMP packet with a DTD ignored"]
    try:
        root = ET.fromstring(fix_utf8(packet.lstrip(b"\0")).strip("\0 \t\r\n"))
    except ET.ParseError as exc:
        return [], [f"XMP unreadable: {exc}"]
    except ValueError as exc:  # noqa: BLE001 - odd text the XML parser refuses
        return [], [f"XMP unreadable: {exc}"]
    tags: list[Tag] = []
    for rdf in root.iter(f"{{{RDF}}}RDF"):
        for desc in rdf:  # a Description nested in a property is a structure, read with it
            if desc.tag == f"{{{RDF}}}Description":
                _description(desc, [], tags, 0)
            if len(tags) > MAX_XMP_TAGS:
                return tags[:MAX_XMP_TAGS], [f"XMP: more than {MAX_XMP_TAGS} properties, the rest left out"]
    return tags, []


def _split(qname: str) -> tuple[str, str] | None:
    if not qname.startswith("{"):
        return None
    uri, _, local = qname[1:].partition("}")
    if uri in _SKIP_NS:
        return None
    return _NAMESPACES.get(uri, uri), local


def _description(desc: ET.Element, path: list[tuple[str, str]], tags: list[Tag], depth: int) -> None:
    for qname, value in desc.attrib.items():
        prop = _split(qname)
        if prop:
            _add(tags, path + [prop], value)
    for child in desc:
        prop = _split(child.tag)
        if prop:
            _property(child, path + [prop], tags, depth + 1)


def _property(elem: ET.Element, path: list[tuple[str, str]], tags: list[Tag], depth: int) -> None:
    if depth > _MAX_DEPTH:
        return
    children = list(elem)
    if not children:
        if elem.get(f"{{{RDF}}}resource") is not None:
            _add(tags, path, elem.get(f"{{{RDF}}}resource") or "")
        elif elem.attrib and not (elem.text or "").strip():
            _description(elem, path, tags, depth)  # a structure written as attributes
        else:
            _add(tags, path, elem.text or "")
        return
    first = children[0]
    if first.tag in (f"{{{RDF}}}Alt", f"{{{RDF}}}Bag", f"{{{RDF}}}Seq"):
        items = [li for li in first if li.tag == f"{{{RDF}}}li"]
        if first.tag == f"{{{RDF}}}Alt":
            chosen = next((li for li in items if li.get(f"{{{XML_NS}}}lang", "").lower() == "x-default"),
                          items[0] if items else None)
            if chosen is not None:
                _add(tags, path, chosen.text or "")
            return
        values = [li.text or "" for li in items if not list(li)]
        if values:
            _add(tags, path, values[0] if len(values) == 1 else values)
        return
    if elem.get(f"{{{RDF}}}parseType") == "Resource":
        _description(elem, path, tags, depth)
    elif first.tag == f"{{{RDF}}}Description":
        _description(first, path, tags, depth)


def _add(tags: list[Tag], path: list[tuple[str, str]], value: str | list[str]) -> None:
    ns, local = path[0]
    name = _RENAMED.get((ns, local), local[:1].upper() + local[1:])
    for _, field in path[1:]:
        name += field[:1].upper() + field[1:]
    known = ns in _NAMESPACES.values()
    if isinstance(value, str):
        value = convert_date(value, len(path) == 1 and (ns, local) in _DATE_TAGS)
    priority = 0 if (not known or ns in _LOW_PRIORITY_NS or (ns, local) in _LOW_PRIORITY_TAGS) else 1
    tags.append(Tag("XMP", re.sub(r"[^\w-]", "", name) or "Unknown", value, priority))
