"""S3's limits on keys and user metadata, counted as S3 counts them, and the metadata value encoding.

- An object key is at most 1024 bytes of UTF-8 (S3: 400 KeyTooLongError).
- User metadata is at most 2048 bytes: the sum, over every entry, of the UTF-8 bytes of its name
  *without* the `x-amz-meta-` prefix and of its value (S3: 400 MetadataTooLarge). Names are stored
  lower-case. The prefix is not counted (it is part of the 8 KB request-header limit instead).
- Metadata values travel as HTTP headers: ASCII only. docs/animl.md (Keys) asks for the UTF-8 text
  percent-encoded (`quote(value, safe='')`), which costs 3 bytes per non-ASCII byte: a 1024-byte key
  of non-Latin text would take 3072. A value that does not fit that way is sent as one RFC 2047
  encoded word instead, `=?UTF-8?B?<base64 of the UTF-8>?=` (4 bytes per 3), the form S3 itself uses
  for non-ASCII metadata. Percent-encoding never produces `=` or `?`, so `decode_meta` tells the two
  apart. We count the bytes we send, which is never less than what S3 counts for an encoded word.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse

MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048
_WORD_START, _WORD_END = "=?UTF-8?B?", "?="


def key_bytes(key: str) -> int:
    return len(key.encode("utf-8"))


def s3_metadata_size(metadata: dict[str, str]) -> int:
    """Bytes S3 counts against its 2 KB: names (no `x-amz-meta-`) plus values, UTF-8."""
    return sum(len(k.lower().encode("utf-8")) + len(v.encode("utf-8")) for k, v in metadata.items())


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` whose UTF-8 encoding fits in `max_bytes` (never half a character)."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max(0, max_bytes)].decode("utf-8", errors="ignore")


def quote_meta(value: str) -> str:
    """The contract's encoding: the UTF-8 text percent-encoded."""
    return urllib.parse.quote(value, safe="")


def compact_meta(value: str) -> str:
    """The shorter encoding for values percent-encoding would make too long (RFC 2047, base64)."""
    return _WORD_START + base64.b64encode(value.encode("utf-8")).decode("ascii") + _WORD_END


def decode_meta(value: str) -> str:
    """The text of a metadata value written by `quote_meta` or `compact_meta` (or by S3, which
    returns non-ASCII metadata as RFC 2047 encoded words)."""
    v = value.strip()
    if v.startswith("=?") and v.endswith("?="):
        if v.upper().startswith(_WORD_START) and "?=" not in v[len(_WORD_START):-2]:
            try:
                return base64.b64decode(v[len(_WORD_START):-2], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return value
        from email.header import decode_header, make_header

        try:
            return str(make_header(decode_header(v)))
        except (ValueError, LookupError):
            return value
    return urllib.parse.unquote(value)


def fit_metadata(values: dict[str, str], cuttable: tuple[str, ...] = ()) -> dict[str, str]:
    """`values` (plain text) encoded as S3 user metadata within S3's 2 KB, counted as S3 counts.

    Each value is percent-encoded (the contract's form); while the whole does not fit, the longest
    value that is shorter as an RFC 2047 word is sent as one. Then the `cuttable` entries, in order,
    are cut to what room is left (by characters of the text, so that an escape or a character is
    never split); the others (the original key, which a redrive needs whole) never are."""
    enc = {k: quote_meta(v) for k, v in values.items()}
    for name in sorted((k for k in values if k not in cuttable), key=lambda k: -len(enc[k])):
        if s3_metadata_size(enc) <= MAX_METADATA_BYTES:
            break
        compact = compact_meta(values[name])
        if len(compact) < len(enc[name]):
            enc[name] = compact
    for name in cuttable:
        if name not in values or s3_metadata_size(enc) <= MAX_METADATA_BYTES:
            continue
        room = MAX_METADATA_BYTES - (s3_metadata_size(enc) - len(enc[name]))
        text = values[name]
        lo, hi = 0, len(text)
        while lo < hi:  # the longest prefix of the text whose encoding fits
            mid = (lo + hi + 1) // 2
            if len(quote_meta(text[:mid])) <= room:
                lo = mid
            else:
                hi = mid - 1
        enc[name] = quote_meta(text[:lo])
    return enc
