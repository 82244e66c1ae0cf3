"""Text the way exiftool prints it.

exiftool keeps tag values as bytes and only at JSON output time removes NULs and replaces each byte
that is not part of a valid UTF-8 sequence with ``?`` (one ``?`` per byte, unlike Python's
``errors='replace'``, which gives one replacement for a whole broken sequence). Control characters
stay. Values that look like numbers become JSON numbers. These functions reproduce those steps so
the md record carries the same values the Node ingest got from ``exiftool -json``.
"""

from __future__ import annotations

import functools
import re
import struct
from typing import Any

# Perl's \s on byte strings: space, \t, \n, \v, \f, \r (not \x1c-\x1f, \x85 or \xa0 as in Python).
PERL_WHITESPACE = b" \t\n\v\f\r"

# exiftool's EscapeJSON: strings that look like these numbers are written as JSON numbers.
_JSON_NUMBER = re.compile(r"-?(\d|[1-9]\d{1,14})(\.\d{1,16})?([eE][-+]?\d{1,3})?", re.ASCII)


def fix_utf8(raw: bytes) -> str:
    """Decode UTF-8, replacing every byte that is not part of a valid sequence by '?'.

    Mirrors exiftool's FixUTF8: a lead byte C2-F7 followed by enough continuation bytes is kept
    unless the sequence is overlong, a surrogate, U+FFFE/U+FFFF or above U+10FFFF; otherwise only
    the lead byte is replaced and the scan goes on with the next byte.
    """
    if raw.isascii():
        return raw.decode("ascii")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch < 0x80:
            out.append(ch)
            i += 1
            continue
        if 0xC2 <= ch < 0xF8:
            need = 1 if ch < 0xE0 else (2 if ch < 0xF0 else 3)
            tail = raw[i + 1:i + 1 + need]
            if len(tail) == need and all(0x80 <= b <= 0xBF for b in tail) and not _bad_sequence(ch, tail):
                out += raw[i:i + 1 + need]
                i += 1 + need
                continue
        out.append(0x3F)  # '?'
        i += 1
    return out.decode("utf-8")


def _bad_sequence(lead: int, tail: bytes) -> bool:
    if len(tail) == 2:
        return ((lead == 0xE0 and (tail[0] & 0xE0) == 0x80)  # overlong
                or (lead == 0xED and (tail[0] & 0xE0) == 0xA0)  # UTF-16 surrogate
                or (lead == 0xEF and tail[0] == 0xBF and (tail[1] & 0xFE) == 0xBE))  # U+FFFE, U+FFFF
    if len(tail) == 3:
        return ((lead == 0xF0 and (tail[0] & 0xF0) == 0x80)  # overlong
                or (lead == 0xF4 and tail[0] > 0x8F) or lead > 0xF4)  # above U+10FFFF
    return False


def cut_at_nul(raw: bytes) -> bytes:
    """EXIF ASCII values end at their first NUL (whatever the declared count says)."""
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


def exif_string(raw: bytes, trim: bool = False) -> bytes:
    """An EXIF ASCII value as exiftool reads it: cut at the first NUL; trailing whitespace removed
    only for the tags exiftool trims (Make, Model, Software, Artist)."""
    value = cut_at_nul(raw)
    return value.rstrip(PERL_WHITESPACE) if trim else value


def user_comment(raw: bytes, big_endian: bool = False) -> bytes:
    """EXIF UserComment-style text (exiftool's ConvertExifText); `big_endian`: the TIFF byte order.

    The first 8 bytes name the character code: ``ASCII\\0\\0\\0``, NULs (undefined) or blanks:
    the rest is cut at its first NUL. ``UNICODE\\0``: UTF-16, byte order guessed as exiftool does
    (`decode_utf16`). ``JIS\\0\\0\\0\\0\\0``: JIS X 0208 two-byte codes (`decode_jis`), not
    Shift-JIS. Any other header (Cuddeback, BolyMedia write none): the whole value is the text.
    Trailing spaces are trimmed. Returns UTF-8 bytes (NULs left in are removed at output, as
    exiftool's JSON writer does; a lone UTF-16 surrogate is left for `printable` to turn into '?').
    """
    if len(raw) < 8:
        return raw
    head, body = raw[:8], raw[8:]
    if re.match(rb"(ASCII)?(\0|[\0 ]+$)", head):
        body = cut_at_nul(body)
    elif re.fullmatch(rb"UNICODE[\0 ]", head):
        body = _utf8(decode_utf16(body, big_endian))
    elif re.fullmatch(rb"JIS[\0 ]{5}", head):
        body = _utf8(decode_jis(body, big_endian))
    else:
        body = raw
    return body.rstrip(b" ")


def _utf8(code_points: list[int]) -> bytes:
    """Perl's pack('C0U*') then exiftool's cut at the first NUL character."""
    text = "".join(chr(c) for c in code_points).split("\0", 1)[0]
    return text.encode("utf-8", "surrogatepass")


def _words(raw: bytes, big_endian: bool) -> list[int]:
    n = len(raw) // 2  # an odd last byte is dropped, as Perl's unpack('n*') does
    return list(struct.unpack(f"{'>' if big_endian else '<'}{n}H", raw[:2 * n]))


def _swapped(words: list[int]) -> list[int]:
    return [((w & 0xFF) << 8) | (w >> 8) for w in words]


def decode_utf16(raw: bytes, big_endian: bool = False) -> list[int]:
    """UTF-16 of unknown byte order as exiftool decodes it (Charset::Decompose, 'Unknown'): a BOM
    decides; otherwise the words are read in the TIFF byte order and swapped when the high bytes
    take more distinct values than the low bytes, or as many and the low byte is zero more often.
    Valid surrogate pairs are joined. Returns code points."""
    guess = True
    if raw[:2] in (b"\xfe\xff", b"\xff\xfe"):
        big_endian, raw, guess = raw[:2] == b"\xfe\xff", raw[2:], False
    words = _words(raw, big_endian)
    if guess:
        high, low = {w >> 8 for w in words}, {w & 0xFF for w in words}
        zero_high = sum(1 for w in words if not w & 0xFF00)
        zero_low = sum(1 for w in words if not w & 0x00FF)
        if len(high) > len(low) or (len(high) == len(low) and zero_low > zero_high):
            words = _swapped(words)
    out: list[int] = []
    i = 0
    while i < len(words):
        w = words[i]
        if 0xD800 <= w < 0xDC00 and i + 1 < len(words) and 0xDC00 <= words[i + 1] < 0xE000:
            out.append(0x10000 + ((w & 0x3FF) << 10) + (words[i + 1] & 0x3FF))
            i += 2
        else:
            out.append(w)
            i += 1
    return out


@functools.lru_cache(maxsize=8192)
def _jis_char(code: int) -> int | None:
    """JIS X 0208 (1990) as exiftool's table (unicode.org JIS0208.TXT) maps it. Python's
    iso2022_jp codec holds the same 6879 codes; only 0x2140 differs (exiftool: U+005C)."""
    if code == 0x2140:
        return 0x5C
    hi, lo = code >> 8, code & 0xFF
    if not (0x21 <= hi <= 0x7E and 0x21 <= lo <= 0x7E):
        return None
    try:
        decoded = (b"\x1b$B" + bytes([hi, lo]) + b"\x1b(B").decode("iso2022_jp")
    except UnicodeDecodeError:
        return None
    return ord(decoded) if len(decoded) == 1 else None


def decode_jis(raw: bytes, big_endian: bool = False) -> list[int]:
    """JIS X 0208 two-byte codes as exiftool decodes them (byte order 'Unknown'): words in the TIFF
    byte order, each mapped through the table; a word with no mapping is kept as its own value.
    When some words have no mapping and the other byte order leaves fewer, that order is used."""
    def mapped(words: list[int]) -> tuple[list[int], int]:
        chars = [_jis_char(w) for w in words]
        return [w if c is None else c for w, c in zip(words, chars, strict=True)], chars.count(None)

    first, errors = mapped(_words(raw, big_endian))
    if errors:
        other, other_errors = mapped(_words(raw, not big_endian))
        if other_errors < errors:
            return other
    return first


def ucs2le(raw: bytes) -> str:
    """Fixed-size UTF-16LE field (Reconyx serials), cut at the first NUL character."""
    text = raw[: len(raw) // 2 * 2].decode("utf-16-le", "replace")
    end = text.find("\0")
    return text if end < 0 else text[:end]


def printable(value: bytes | str) -> str:
    """A text value as exiftool's JSON writer prints it: NULs removed, invalid UTF-8 bytes as '?'."""
    if isinstance(value, bytes):
        return fix_utf8(value.replace(b"\0", b""))
    return value.replace("\0", "")


def json_scalar(text: str) -> str | int | float | bool:
    """exiftool writes strings that look like numbers (or true/false) as JSON numbers (booleans)."""
    if _JSON_NUMBER.fullmatch(text):
        return float(text) if ("." in text or "e" in text or "E" in text) else int(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def binary_placeholder(size: int) -> str:
    """exiftool's stand-in for binary values, so md never carries raw bytes."""
    return f"(Binary data {size} bytes, use -b option to extract)"


def first_group(pattern: re.Pattern[Any], subject: bytes | str | None) -> str | None:
    """The first group of the pattern's first match, printable and without surrounding blanks;
    None when there is no match or nothing is left."""
    match = pattern.search(subject) if subject else None
    if not match:
        return None
    return printable(match.group(1)).strip() or None
