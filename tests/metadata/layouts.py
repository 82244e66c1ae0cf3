"""Every JPEG layout of issue 14, built from bytes, one name each.

`LAYOUTS` maps a name to (file name, bytes). The same bytes were given to exiftool 12.57 (the
Debian bookworm package) by `python -m tests.metadata.record_oracle`, and its answer is committed in
`tests/metadata/oracle/layouts.json`; tests compare the reader with that answer, so they do not need
exiftool (tests/metadata/test_layouts.py runs exiftool again as a cross-check where it is installed).

Each file is a real JPEG: Pillow encodes a small grey picture, its JFIF segment is dropped, and
the segments of the layout are put between SOI and the rest (quantisation and Huffman tables,
frame header, scan). Builders do not depend on the Pillow version for anything but the pixels.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

from PIL import Image

from tests.metadata.builders import Entry, png, tiff

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
NS = {
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "aux": "http://ns.adobe.com/exif/1.0/aux/",
    "exifEX": "http://cipa.jp/exif/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
}


def _body(size: tuple[int, int] = (16, 16)) -> bytes:
    """A Pillow JPEG without SOI and without its JFIF APP0: tables, SOF, SOS, scan, EOI."""
    buf = io.BytesIO()
    Image.new("L", size, 128).save(buf, format="JPEG", quality=75)
    data = buf.getvalue()
    pos = 2
    while data[pos + 1] == 0xE0:  # drop APP0
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return data[pos:]


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def exif_app1(block: bytes, header: bytes = b"Exif\0\0") -> bytes:
    return segment(0xE1, header + block)


def xmp_packet(attrs: dict[str, str] | None = None, elements: dict[str, str] | None = None,
               lang_alt: dict[str, str] | None = None) -> bytes:
    """An XMP packet: `attrs` as attributes of one rdf:Description, `elements` as simple child
    elements, `lang_alt` as rdf:Alt lists with an x-default entry (keys are `prefix:name`)."""
    used = {k.split(":")[0] for k in (attrs or {}) | (elements or {}) | (lang_alt or {})}
    xmlns = "".join(f" xmlns:{p}='{NS[p]}'" for p in sorted(used))
    attr_text = "".join(f"\n   {k}='{v}'" for k, v in (attrs or {}).items())
    children = "".join(f"\n   <{k}>{v}</{k}>" for k, v in (elements or {}).items())
    children += "".join(
        f"\n   <{k}><rdf:Alt><rdf:li xml:lang='x-default'>{v}</rdf:li></rdf:Alt></{k}>"
        for k, v in (lang_alt or {}).items())
    return ("<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
            "<x:xmpmeta xmlns:x='adobe:ns:meta/'>\n"
            "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\n"
            f" <rdf:Description rdf:about=''{xmlns}{attr_text}>{children}\n </rdf:Description>\n"
            "</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end='w'?>").encode()


def xmp_app1(packet: bytes) -> bytes:
    return segment(0xE1, XMP_HEADER + packet)


def jpeg_of(*segments: bytes, size: tuple[int, int] = (16, 16)) -> bytes:
    return b"\xff\xd8" + b"".join(segments) + _body(size)


def _ascii(text: str) -> bytes:
    return text.encode("latin-1") + b"\0"


def camera_exif(make: str | None = "CAM-A", model: str | None = "MODEL-A", serial: str | None = None,
                date: str | None = "2020:01:02 03:04:05", big_endian: bool = False,
                extra_ifd0: list[Entry] | None = None, extra_exif: list[Entry] | None = None) -> bytes:
    """An EXIF TIFF block with the ingest fields: Make/Model in IFD0; DateTimeOriginal and
    SerialNumber (0xA431, BodySerialNumber) in the Exif IFD."""
    ifd0: list[Entry] = list(extra_ifd0 or [])
    if make is not None:
        ifd0.append((0x010F, 2, _ascii(make)))
    if model is not None:
        ifd0.append((0x0110, 2, _ascii(model)))
    sub: list[Entry] = list(extra_exif or [])
    if date is not None:
        sub.append((0x9003, 2, _ascii(date)))
    if serial is not None:
        sub.append((0xA431, 2, _ascii(serial)))
    return tiff(ifd0, sub, big_endian=big_endian)


def user_comment_exif(comment: bytes, big_endian: bool = False) -> bytes:
    return camera_exif(big_endian=big_endian, extra_exif=[(0x9286, 7, comment)])


def _jis(text: str) -> bytes:
    """JIS X 0208 two-byte codes (no escape sequences), as the EXIF 'JIS' character code means."""
    out = b""
    for ch in text:
        coded = ch.encode("iso2022_jp")
        assert coded.startswith(b"\x1b$B") and coded.endswith(b"\x1b(B"), ch
        out += coded[3:-3]
    return out


_CAMERA_XMP = {"tiff:Make": "XMP-MAKE", "tiff:Model": "XMP-MODEL", "aux:SerialNumber": "XMP-SN-7",
               "exif:DateTimeOriginal": "2021-06-07T08:09:10"}


def _mpf_app2() -> bytes:
    """An MPF APP2 segment (CIPA DC-007) describing the primary image only."""
    body = b"II*\0" + struct.pack("<I", 8)
    entries = [(0xB000, 7, 4, int.from_bytes(b"0100", "little")), (0xB001, 4, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0" * 4
    return segment(0xE2, b"MPF\0" + body + ifd)


def _truncated_in_exif() -> bytes:
    whole = jpeg_of(exif_app1(camera_exif(serial="CUT-SN-1")))
    cut_at = 2 + 4 + 6 + 60  # inside the TIFF block: IFD0 read, Make/Model values not all there
    return whole[:cut_at]


def _exif_segment_overruns_file() -> bytes:
    """The APP1 length claims more bytes than the file has, but the TIFF block itself is complete."""
    block = camera_exif(serial="OVER-SN-2")
    return b"\xff\xd8" + b"\xff\xe1" + struct.pack(">H", len(block) + 8 + 500) + b"Exif\0\0" + block


def _multi_segment_exif() -> bytes:
    """One EXIF block split over two APP1 segments, the second `Exif\\0\\0` + the rest."""
    block = camera_exif("SPLIT-CAM", "SPLIT-MODEL", "SPLIT-SN-5", "2022:02:02 02:02:02")
    cut = 30
    return jpeg_of(exif_app1(block[:cut]), exif_app1(block[cut:]))


def _build() -> dict[str, tuple[str, Callable[[], bytes]]]:
    a = camera_exif("CAM-A", "MODEL-A", None, "2020:01:02 03:04:05")
    b = camera_exif("CAM-B", "MODEL-B", "SN-B-0002", "2021:02:03 04:05:06")
    xmp = xmp_app1(xmp_packet(attrs=_CAMERA_XMP))
    jpg: dict[str, Callable[[], bytes]] = {
        # -- several APP1 segments ------------------------------------------------------------------
        "two_exif_disagree": lambda: jpeg_of(exif_app1(a), exif_app1(b)),
        "two_exif_second_adds_serial": lambda: jpeg_of(
            exif_app1(camera_exif("CAM-A", "MODEL-A", None)),
            exif_app1(camera_exif(None, None, "SN-ONLY-IN-2", None))),
        "two_exif_first_blank_make": lambda: jpeg_of(
            exif_app1(camera_exif("", "MODEL-A")), exif_app1(camera_exif("CAM-B", None, None, None))),
        "two_exif_second_blank_make": lambda: jpeg_of(
            exif_app1(camera_exif("CAM-A", "MODEL-A")), exif_app1(camera_exif("", None, None, None))),
        "multi_segment_exif": _multi_segment_exif,
        "exif_then_xmp": lambda: jpeg_of(exif_app1(a), xmp),
        "xmp_then_exif": lambda: jpeg_of(xmp, exif_app1(a)),
        "xmp_only_attributes": lambda: jpeg_of(xmp),
        "xmp_only_elements": lambda: jpeg_of(xmp_app1(xmp_packet(elements=_CAMERA_XMP))),
        "exif_xmp_exif": lambda: jpeg_of(exif_app1(a), xmp, exif_app1(b)),
        "exif_no_make_then_xmp": lambda: jpeg_of(exif_app1(camera_exif(None, None, None, None)), xmp),
        "xmp_date_forms": lambda: jpeg_of(xmp_app1(xmp_packet(attrs={
            "exif:DateTimeOriginal": "2019-03-04T05:06:07.25+02:00", "xmp:CreateDate": "2019-03-04",
            "xmp:ModifyDate": "2019-03-04T05:06Z"}))),
        "xmp_lang_alt_and_body_serial": lambda: jpeg_of(xmp_app1(xmp_packet(
            attrs={"exifEX:BodySerialNumber": "BODY-SN-3", "tiff:Make": "XMPCAM"},
            lang_alt={"exif:UserComment": "xmp comment", "dc:description": "a heron"}))),
        "xmp_entities": lambda: jpeg_of(xmp_app1(xmp_packet(
            attrs={"tiff:Make": "A&amp;B &lt;cam&gt;"}, elements={"aux:SerialNumber": "SN&#x2D;&#49;"}))),
        "xmp_nonstandard_header": lambda: jpeg_of(segment(0xE1, b"XMP\0" + xmp_packet(attrs=_CAMERA_XMP))),
        "xmp_unknown_namespace": lambda: jpeg_of(xmp_app1(xmp_packet(attrs=_CAMERA_XMP).replace(
            b"<rdf:Description rdf:about=''", b"<rdf:Description rdf:about='' xmlns:cam='http://example.org/cam/'"
            b" cam:SerialNumber='CAM-NS-SN' cam:trapName='north'"))),
        "two_xmp": lambda: jpeg_of(xmp, xmp_app1(xmp_packet(attrs={"tiff:Make": "SECOND-XMP",
                                                                   "aux:SerialNumber": "SN-XMP-2"}))),
        "xmp_then_exif_blank_serial": lambda: jpeg_of(xmp, exif_app1(camera_exif(serial=" "))),
        "exif_lowercase_header": lambda: jpeg_of(exif_app1(a, header=b"exif\0\0")),
        "exif_garbage_before_header": lambda: jpeg_of(exif_app1(b, header=b"\0\0Exif\0\0")),
        # -- cut off --------------------------------------------------------------------------------
        "truncated_in_exif": _truncated_in_exif,
        "truncated_in_xmp_after_exif": lambda: jpeg_of(exif_app1(b), xmp)[:2 + len(exif_app1(b)) + 80],
        "truncated_in_xmp_after_exif_and_comment": lambda: jpeg_of(
            exif_app1(b), segment(0xFE, b"a comment"), xmp)[:2 + len(exif_app1(b)) + 13 + 80],
        "ends_after_exif": lambda: b"\xff\xd8" + exif_app1(b),
        "ends_one_byte_after_exif": lambda: b"\xff\xd8" + exif_app1(b) + b"\xff",
        "ends_in_next_segment_header": lambda: b"\xff\xd8" + exif_app1(b) + b"\xff\xfe\x00",
        "ends_before_sof": lambda: jpeg_of(exif_app1(b))[:jpeg_of(exif_app1(b)).index(b"\xff\xc0")],
        "exif_segment_overruns_file": _exif_segment_overruns_file,
        # -- stored types ---------------------------------------------------------------------------
        "make_as_byte": lambda: jpeg_of(exif_app1(tiff([(0x010F, 1, b"BYTECAM\0"), (0x0110, 2, b"M1\0")]))),
        "make_as_undefined": lambda: jpeg_of(exif_app1(tiff([(0x010F, 7, b"UNDEFCAM\0"),
                                                             (0x0110, 7, b"UM\0")]))),
        "make_as_short": lambda: jpeg_of(exif_app1(tiff([(0x010F, 3, (67, 65, 77))]))),
        "serial_as_undefined": lambda: jpeg_of(exif_app1(camera_exif(
            extra_exif=[(0xA431, 7, b"SN-UNDEF-4\0")]))),
        "serial_as_byte": lambda: jpeg_of(exif_app1(camera_exif(extra_exif=[(0xA431, 1, b"SN-B1\0")]))),
        "serial_undefined_control": lambda: jpeg_of(exif_app1(camera_exif(
            extra_exif=[(0xA431, 7, b"SN\x01\x02-\x7f9\0")]))),
        "serial_undefined_high_bytes": lambda: jpeg_of(exif_app1(camera_exif(
            extra_exif=[(0xA431, 7, b"SN\xff\xfe\xe8\x86-9\0")]))),
        "serial_undefined_long_text": lambda: jpeg_of(exif_app1(camera_exif(
            extra_exif=[(0xA431, 7, b"SN-" + b"7" * 120)]))),
        "serial_undefined_nul_inside": lambda: jpeg_of(exif_app1(camera_exif(
            extra_exif=[(0xA431, 7, b"SN-1\0junk\0")]))),
        "undefined_unknown_tag_binary": lambda: jpeg_of(exif_app1(camera_exif(
            extra_exif=[(0xA40B, 7, bytes(range(40))), (0xA420, 7, bytes(range(1, 90)))]))),
        "serial_as_long": lambda: jpeg_of(exif_app1(camera_exif(extra_exif=[(0xA431, 4, 123456)]))),
        "date_slashes": lambda: jpeg_of(exif_app1(camera_exif(date="2010/10/10 10:10:10"))),
        "date_dashes": lambda: jpeg_of(exif_app1(camera_exif(date="2010-10-10 10:10:10"))),
        "date_iso_t": lambda: jpeg_of(exif_app1(camera_exif(date="2010:10:10T10:10:10"))),
        "date_with_zone": lambda: jpeg_of(exif_app1(camera_exif(date="2010:10:10 10:10:10+02:00"))),
        "date_as_undefined": lambda: jpeg_of(exif_app1(camera_exif(
            date=None, extra_exif=[(0x9003, 7, b"2010:10:10 10:10:10\0")]))),
        # -- UserComment character codes ------------------------------------------------------------
        "uc_ascii": lambda: jpeg_of(exif_app1(user_comment_exif(b"ASCII\0\0\0camera 7 north\0junk"))),
        "uc_undefined_header": lambda: jpeg_of(exif_app1(user_comment_exif(b"\0" * 8 + b"plain text  "))),
        "uc_unicode_le_in_ii": lambda: jpeg_of(exif_app1(user_comment_exif(
            b"UNICODE\0" + "Café 7".encode("utf-16-le")))),
        "uc_unicode_be_in_mm": lambda: jpeg_of(exif_app1(user_comment_exif(
            b"UNICODE\0" + "Café 7".encode("utf-16-be"), big_endian=True))),
        "uc_unicode_le_in_mm": lambda: jpeg_of(exif_app1(user_comment_exif(
            b"UNICODE\0" + "Microsoft wrote this".encode("utf-16-le"), big_endian=True))),
        "uc_unicode_be_in_ii": lambda: jpeg_of(exif_app1(user_comment_exif(
            b"UNICODE\0" + "Backwards text".encode("utf-16-be")))),
        "uc_unicode_bom_be_in_ii": lambda: jpeg_of(exif_app1(user_comment_exif(
            b"UNICODE\0" + b"\xfe\xff" + "BOM ab".encode("utf-16-be")))),
        "uc_unicode_trailing": lambda: jpeg_of(exif_app1(user_comment_exif(
            b"UNICODE\0" + "pad  ".encode("utf-16-le") + b"\0\0" + "after nul".encode("utf-16-le")))),
        "uc_unicode_japanese": lambda: jpeg_of(exif_app1(user_comment_exif(
            b"UNICODE\0" + "鹿のカメラ".encode("utf-16-le")))),
        "uc_unicode_surrogates": lambda: jpeg_of(exif_app1(user_comment_exif(
            b"UNICODE\0" + "deer \U0001F98C".encode("utf-16-le")))),
        "uc_jis_in_ii": lambda: jpeg_of(exif_app1(user_comment_exif(b"JIS\0\0\0\0\0" + _jis("鹿のカメラ")))),
        "uc_jis_in_mm": lambda: jpeg_of(exif_app1(user_comment_exif(
            b"JIS\0\0\0\0\0" + _jis("鹿のカメラ"), big_endian=True))),
        "uc_jis_shift_jis_bytes": lambda: jpeg_of(exif_app1(user_comment_exif(
            b"JIS\0\0\0\0\0" + "鹿のカメラ".encode("shift_jis")))),
        "uc_unknown_header": lambda: jpeg_of(exif_app1(user_comment_exif(b"Unicode\0" + b"R\0R\0"))),
        "uc_short": lambda: jpeg_of(exif_app1(user_comment_exif(b"ASCII"))),
        # -- file type by name ----------------------------------------------------------------------
        "mpf_named_jpg": lambda: jpeg_of(exif_app1(a), _mpf_app2()),
    }
    pngs: dict[str, Callable[[], bytes]] = {"png": lambda: png(size=(20, 10), exif_tiff=a)}
    out: dict[str, tuple[str, Callable[[], bytes]]] = {n: (f"{n}.jpg", f) for n, f in jpg.items()}
    named = {"mpf_named_mpo": ("mpf_named_mpo.mpo", "mpf_named_jpg"),
             "mpf_named_upper_mpo": ("MPF_NAMED.MPO", "mpf_named_jpg"),
             "jpeg_named_mpo": ("plain.mpo", "two_exif_disagree"),
             "jpeg_named_thm": ("plain.thm", "two_exif_disagree"),
             "jpeg_named_jps": ("plain.jps", "two_exif_disagree"),
             "jpeg_named_jpeg": ("plain.jpeg", "two_exif_disagree"),
             "jpeg_named_jpe": ("plain.JPE", "two_exif_disagree"),
             "jpeg_named_png": ("plain.png", "two_exif_disagree"),
             "jpeg_named_tif": ("plain.tif", "two_exif_disagree"),
             "jpeg_named_txt": ("plain.txt", "two_exif_disagree"),
             "jpeg_named_insp": ("plain.insp", "two_exif_disagree"),
             "jpeg_no_extension": ("plain", "two_exif_disagree"),
             "png_named_apng": ("plain.apng", "png"),
             "png_named_mng": ("plain.mng", "png"),
             "png_named_jng": ("plain.jng", "png"),
             "png_named_jpg": ("plain_png.jpg", "png")}
    for name, (file_name, like) in named.items():
        out[name] = (file_name, {**jpg, **pngs}[like])
    return out


LAYOUTS = _build()


def build(name: str) -> tuple[str, bytes]:
    file_name, make = LAYOUTS[name]
    return file_name, make()
