"""Seeded random mutations of the corpus files: the reader never raises, stays fast on every file,
and never reports a serial number the file does not hold.

Mutations: byte flips (mostly in the metadata before the scan data), truncations, offset loops
(IFD pointers sent back to an IFD already read, or to themselves) and oversized counts (IFD entry
counts, value counts, JPEG segment lengths). A case "raises" when the reader's internal fallback
(`metadata unreadable`) is taken, since `read_metadata` itself turns any exception into that.

The default run (CI) takes FUZZ_CASES cases per file; `-m stress` runs STRESS_CASES per file.
"""

from __future__ import annotations

import json
import random
import re
import struct
import time
from dataclasses import dataclass, field

import pytest

from animl_ingest_cli.images import decode_cost_error
from animl_ingest_cli.metadata import read_metadata
from tests.conftest import corpus_files, needs_corpus
from tests.metadata.layouts import LAYOUTS, build

FUZZ_CASES = 60          # per corpus file, in the default run
STRESS_CASES = 1000      # per corpus file, with -m stress
MAX_SECONDS_PER_CASE = 0.5   # of CPU; a clean read takes milliseconds: this catches runaway work
METADATA_REGION = 70_000     # where the segments before the scan data sit in camera files


@dataclass
class Tiff:
    """Where the first EXIF TIFF block is, and the file offsets of its IFD entries and pointers."""

    base: int
    order: str
    ifds: list[int] = field(default_factory=list)          # file offsets of IFD entry counts
    entries: list[int] = field(default_factory=list)       # file offsets of 12-byte entries
    pointers: list[int] = field(default_factory=list)      # file offsets of IFD pointer values


def find_tiff(data: bytes) -> Tiff | None:
    at = data.find(b"Exif\0\0", 0, METADATA_REGION)
    if at < 0 or data[at + 6:at + 8] not in (b"II", b"MM"):
        return None
    base = at + 6
    tiff = Tiff(base, "<" if data[base] == 0x49 else ">")

    def u16(pos: int) -> int:
        return struct.unpack_from(tiff.order + "H", data, pos)[0] if pos + 2 <= len(data) else 0

    def u32(pos: int) -> int:
        return struct.unpack_from(tiff.order + "I", data, pos)[0] if pos + 4 <= len(data) else 0

    todo, seen = [u32(base + 4)], set()
    tiff.pointers.append(base + 4)
    while todo and len(seen) < 8:
        off = todo.pop()
        if off in seen or not 8 <= off < len(data) - base - 2:
            continue
        seen.add(off)
        tiff.ifds.append(base + off)
        count = min(u16(base + off), 200)
        for i in range(count):
            entry = base + off + 2 + 12 * i
            if entry + 12 > len(data):
                break
            tiff.entries.append(entry)
            if u16(entry) in (0x8769, 0x8825, 0xA005):
                tiff.pointers.append(entry + 8)
                todo.append(u32(entry + 8))
        nxt = base + off + 2 + 12 * count
        tiff.pointers.append(nxt)
        todo.append(u32(nxt))
    return tiff


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random mutation: (its kind, the mutated bytes)."""
    buf = bytearray(data)
    region = min(len(buf), METADATA_REGION)
    if not buf:
        return "empty", data
    kind = rng.choice(["flip", "flip", "truncate", "loop", "count", "segment"])
    tiff = find_tiff(data) if kind in ("loop", "count") else None
    if kind in ("loop", "count") and tiff is None:
        kind = "flip"
    if kind == "flip":
        for _ in range(rng.randint(1, 24)):
            where = region if rng.random() < 0.9 else len(buf)
            buf[rng.randrange(where)] = rng.randrange(256)
    elif kind == "truncate":
        cut = rng.randrange(region) if rng.random() < 0.8 else rng.randrange(len(buf))
        del buf[cut:]
    elif kind == "loop":
        assert tiff is not None
        target = rng.choice(tiff.ifds + [tiff.base, tiff.base + 8]) - tiff.base
        for pos in rng.sample(tiff.pointers, k=min(len(tiff.pointers), rng.randint(1, 3))):
            struct.pack_into(tiff.order + "I", buf, pos, target if rng.random() < 0.8 else pos - tiff.base)
    elif kind == "count":
        assert tiff is not None
        huge = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x10000000, 1 << 20, 65535, 4097])
        if tiff.entries and rng.random() < 0.7:
            for pos in rng.sample(tiff.entries, k=min(len(tiff.entries), rng.randint(1, 4))):
                struct.pack_into(tiff.order + "I", buf, pos + 4, huge)
        elif tiff.ifds:
            struct.pack_into(tiff.order + "H", buf, rng.choice(tiff.ifds), rng.choice([0xFFFF, 1001, 5000]))
    else:  # a JPEG segment length made too large, too small or zero
        heads = [m.start() for m in re.finditer(rb"\xff[\xc0-\xfe]", bytes(buf[:region]))]
        if heads:
            pos = rng.choice(heads) + 2
            if pos + 2 <= len(buf):
                length = rng.choice([0, 1, 2, 3, 0xFFFF, 0x8000, rng.randrange(65536)])
                struct.pack_into(">H", buf, pos, length)
    return kind, bytes(buf)


def serial_is_in(serial: str, data: bytes, original: str) -> bool:
    """The serial is 'unknown', the file's own serial before mutation, or held by these bytes: as
    text (UTF-8, Latin-1 or UTF-16 either way; a '?' stands for a byte that was not valid UTF-8, and
    NULs may sit between characters: exiftool drops them from an UNDEFINED value),
    or as the stored numbers exiftool prints for a text tag stored as integers."""
    if serial in ("unknown", original):
        return True
    for encoding in ("utf-8", "latin-1", "utf-16-le", "utf-16-be"):
        try:  # NULs inside the value are dropped when printed: allow them between characters
            pattern = b"\0*".join(b".{1,4}" if ch == "?" else re.escape(ch.encode(encoding)) for ch in serial)
        except UnicodeEncodeError:
            continue
        if re.search(pattern, data, re.S):
            return True
    numbers = serial.split()
    if numbers and all(re.fullmatch(r"-?(\d+(\.\d*)?(e[-+]?\d+)?|inf|undef)", n) for n in numbers):
        if _serial_stored_as_fraction(data):
            return True  # a SerialNumber entry of RATIONAL/FLOAT type prints as decimals
    if numbers and all(re.fullmatch(r"-?\d+", n) for n in numbers):
        values = [int(n) for n in numbers]
        for fmt in ("B", "b", "<H", ">H", "<h", ">h", "<I", ">I", "<i", ">i"):
            try:
                packed = b"".join(struct.pack(fmt, v) for v in values)
            except struct.error:
                continue
            if packed in data:
                return True
    return False


def _serial_stored_as_fraction(data: bytes) -> bool:
    tiff = find_tiff(data)
    if tiff is None:
        return False
    for entry in tiff.entries:
        tag, typ = struct.unpack_from(tiff.order + "HH", data, entry)
        if tag in (0xA431, 0xFDE9) and typ in (5, 10, 11, 12):
            return True
    return False


@dataclass
class Report:
    cases: int = 0
    slowest: float = 0.0
    slowest_case: str = ""
    kinds: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def fuzz(files: list[tuple[str, bytes]], cases_per_file: int, seed: int) -> Report:
    report = Report()
    for name, data in files:
        original = str(read_metadata(data, name).md["SerialNumber"])
        rng = random.Random(f"{seed}:{name}")
        for case in range(cases_per_file):
            kind, mutated = mutate(data, rng)
            report.kinds[kind] = report.kinds.get(kind, 0) + 1
            start = time.thread_time()  # CPU time: what the reader costs, whatever the machine's load
            meta = read_metadata(mutated, name)
            decode_cost_error(mutated)
            took = time.thread_time() - start
            report.cases += 1
            where = f"{name} case {case} ({kind}, seed {seed})"
            if took > report.slowest:
                report.slowest, report.slowest_case = took, where
            md = meta.md
            if any("metadata unreadable" in e for e in md["errors"]):
                report.failures.append(f"{where}: the reader raised: {md['errors']}")
            if took > MAX_SECONDS_PER_CASE:
                report.failures.append(f"{where}: {took:.2f} s")
            serial = md["SerialNumber"]
            if not isinstance(serial, str) or not serial_is_in(serial, mutated, original):
                report.failures.append(f"{where}: serial {serial!r} is not in the file")
            if len(json.dumps(md)) > 400_000:
                report.failures.append(f"{where}: record of {len(json.dumps(md))} bytes")
    return report


CORPUS = [(path.name, path.read_bytes()) for path in corpus_files()]
LAYOUT_FILES = [build(name) for name in sorted(LAYOUTS)]
LAYOUT_CASES = 12        # per layout of tests/metadata/layouts.py (XMP, several EXIF segments...)


@needs_corpus
def test_fuzz_corpus_mutations() -> None:
    start = time.perf_counter()
    report = fuzz(CORPUS, FUZZ_CASES, seed=14)
    elapsed = time.perf_counter() - start
    assert not report.failures, "\n".join(report.failures[:20])
    assert report.cases == FUZZ_CASES * len(CORPUS)
    assert {"flip", "truncate", "loop", "count", "segment"} <= set(report.kinds)
    print(f"fuzz: {report.cases} cases in {elapsed:.1f} s, slowest {report.slowest * 1000:.0f} ms CPU "
          f"({report.slowest_case}), {report.kinds}")


def test_fuzz_layout_mutations() -> None:
    """The same over the built layouts: XMP packets, several EXIF segments, odd types and charsets."""
    report = fuzz(LAYOUT_FILES, LAYOUT_CASES, seed=15)
    assert not report.failures, "\n".join(report.failures[:20])
    assert report.cases == LAYOUT_CASES * len(LAYOUT_FILES)
    print(f"fuzz layouts: {report.cases} cases, slowest {report.slowest * 1000:.0f} ms CPU "
          f"({report.slowest_case}), {report.kinds}")


@needs_corpus
@pytest.mark.stress
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzz_corpus_mutations_long(seed: int) -> None:
    report = fuzz(CORPUS + LAYOUT_FILES, STRESS_CASES // 3, seed=seed)
    assert not report.failures, "\n".join(report.failures[:20])
    print(f"fuzz seed {seed}: {report.cases} cases, slowest {report.slowest * 1000:.0f} ms CPU "
          f"({report.slowest_case}), {report.kinds}")


def test_serial_check_is_not_vacuous() -> None:
    data = b"....SN-1234\0....H\x005\x000\x000\x00..." + struct.pack("<I", 123456)
    assert serial_is_in("SN-1234", data, "x") and serial_is_in("H500", data, "x")
    assert serial_is_in("123456", data, "x") and serial_is_in("S?-1234", data, "x")
    assert serial_is_in("SN-1junk", b"..SN-1\0junk\0..", "x")
    assert not serial_is_in("SN-9999", data, "x") and not serial_is_in("777", data, "x")
