"""File type from the first bytes, named as exiftool names it (never from the file name alone).

A PNG named `.jpg` is a PNG; a JPEG with an MPF second frame is still a JPEG (Pillow says MPO);
text and HTML saved under an image name are text and HTML. Only when the content says nothing
(an empty file, unknown bytes) does the type fall back to the extension, as the Node ingest did.

Where the content is JPEG or PNG, exiftool 12.57 lets the name pick a variant of that format
(`_NAMED_VARIANTS`, measured: docs/metadata.md): JPEG bytes named `.mpo` are MPO, whether or not
they hold an MPF segment, and PNG bytes named `.mng` are MNG (`video/mng`). Animl ingests only
`.jpg`, `.jpeg` and `.png` names, so for ingest this changes nothing; `inspect` shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class FileType:
    name: str        # exiftool's FileType: JPEG, PNG, TXT, HTML...
    extension: str   # FileTypeExtension: lower case, no dot
    mime: str        # MIMEType
    from_content: bool = True  # False when only the file name was there to go on

    @property
    def is_jpeg(self) -> bool:
        return self.from_content and self.name in ("JPEG", "MPO", "THM", "JPS", "INSP")

    @property
    def is_png(self) -> bool:
        return self.from_content and self.name in ("PNG", "APNG", "MNG", "JNG")


JPEG = FileType("JPEG", "jpg", "image/jpeg")
PNG = FileType("PNG", "png", "image/png")

_MAGIC: list[tuple[re.Pattern[bytes], FileType]] = [
    (re.compile(rb"\xff\xd8\xff"), JPEG),
    (re.compile(rb"\x89PNG\r\n\x1a\n"), PNG),
    (re.compile(rb"GIF8[79]a"), FileType("GIF", "gif", "image/gif")),
    (re.compile(rb"II\*\0|MM\0\*"), FileType("TIFF", "tif", "image/tiff")),
    (re.compile(rb"RIFF....WEBP", re.S), FileType("WEBP", "webp", "image/webp")),
    (re.compile(rb"....ftyp(heic|heix|heim|heis|hevc|hevx)", re.S), FileType("HEIC", "heic", "image/heic")),
    (re.compile(rb"....ftyp(avif|avis)", re.S), FileType("AVIF", "avif", "image/avif")),
    (re.compile(rb"BM....\0\0\0\0", re.S), FileType("BMP", "bmp", "image/bmp")),
    (re.compile(rb"%PDF-"), FileType("PDF", "pdf", "application/pdf")),
    (re.compile(rb"PK\x03\x04"), FileType("ZIP", "zip", "application/zip")),
    (re.compile(rb"\x1f\x8b\x08"), FileType("GZIP", "gz", "application/x-gzip")),
    (re.compile(rb"(\xef\xbb\xbf)?\s*<(!DOCTYPE\s+HTML|HTML)", re.I), FileType("HTML", "html", "text/html")),
    (re.compile(rb"(\xef\xbb\xbf)?\s*<\?xml", re.I), FileType("XML", "xml", "application/xml")),
]
_TEXT = FileType("TXT", "txt", "text/plain")
# Bytes that never appear in text (NUL and C0 controls other than \t \n \v \f \r and ESC).
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_TEXT_SAMPLE = 65536

_BY_EXTENSION = {"jpg": JPEG, "jpeg": JPEG, "png": PNG}

# exiftool's variants chosen by the file name when the bytes are JPEG or PNG (is_jpeg/is_png stay
# true for them: they are read as JPEG and PNG).
_NAMED_VARIANTS: dict[str, dict[str, FileType]] = {
    "JPEG": {"mpo": FileType("MPO", "mpo", "image/jpeg"), "thm": FileType("THM", "thm", "image/jpeg"),
             "jps": FileType("JPS", "jps", "image/x-jps"), "insp": FileType("INSP", "insp", "image/jpeg")},
    "PNG": {"apng": FileType("APNG", "apng", "image/apng"), "mng": FileType("MNG", "mng", "video/mng"),
            "jng": FileType("JNG", "jng", "image/jng")},
}


def detect(data: bytes, name: str = "") -> FileType:
    head = data[:64]
    for pattern, ftype in _MAGIC:
        if pattern.match(head):
            variants = _NAMED_VARIANTS.get(ftype.name)
            return variants.get(_extension(name), ftype) if variants else ftype
    if data and not _BINARY_BYTES.search(data[:_TEXT_SAMPLE]):
        return _TEXT
    return from_extension(name)


def _extension(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).suffix.lower().lstrip(".")


def from_extension(name: str) -> FileType:
    """The type the file name promises (used when the content cannot tell)."""
    ext = _extension(name)
    known = _BY_EXTENSION.get(ext)
    if known:
        return FileType(known.name, ext, known.mime, from_content=False)
    return FileType(ext.upper() or "unknown", ext, "application/octet-stream", from_content=False)
