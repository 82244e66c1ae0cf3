"""Progressive JPEGs with as many scans as wanted, written byte by byte (real, decodable files).

A grey frame (one component), one DC scan where every block's DC difference is the 1-bit code for
"0", then `scans` AC scans (spectral band 1-63) that each cover every block with end-of-band runs
(the EOB14 symbol, a 1-bit code, and 14 bits of run length: 32767 blocks for 15 bits). libjpeg
decodes each of those scans by passing over every block of the image: the file stays small while
the decode work is scans x blocks. With 8000x8000 pixels (the pixel limit) and 4900 scans the file
is 0.6 MB and takes minutes to decode, the case of issue 15 item 7.
"""

from __future__ import annotations

import struct


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _entropy(bits: str) -> bytes:
    """Bits packed MSB first, padded with 1s, 0xFF bytes stuffed with 0x00 (as in a scan)."""
    bits += "1" * (-len(bits) % 8)
    out = bytearray()
    for i in range(0, len(bits), 8):
        byte = int(bits[i:i + 8], 2)
        out.append(byte)
        if byte == 0xFF:
            out.append(0)
    return bytes(out)


def many_scan_jpeg(width: int, height: int, scans: int) -> bytes:
    blocks = -(-width // 8) * -(-height // 8)
    one_code = bytes([1] + [0] * 15)  # Huffman table: a single code of length 1
    out = b"\xff\xd8" + _segment(0xDB, b"\x00" + b"\x01" * 64)
    out += _segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0]))  # SOF2
    # Huffman tables: DC 0 codes category 0 ("no change"), AC 0 codes EOB14 (an end-of-band run)
    out += _segment(0xC4, b"\x00" + one_code + b"\x00" + b"\x10" + one_code + b"\xe0")
    out += _segment(0xDA, bytes([1, 1, 0x00, 0, 0, 0])) + _entropy("0" * blocks)         # DC first scan
    ac_scan = _segment(0xDA, bytes([1, 1, 0x00, 1, 63, 0])) + _entropy(("0" + "1" * 14) * -(-blocks // 32767))
    return out + ac_scan * scans + b"\xff\xd9"


def issue_file() -> bytes:
    """0.6 MB, 4900 scans, 8000x8000 grey: within the pixel limit, minutes of decoding."""
    return many_scan_jpeg(8000, 8000, 4900)
