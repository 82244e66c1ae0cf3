"""The ranged S3 reader under zipfile, and the entry rules, on their edges (moto in-process)."""

from __future__ import annotations

import io
import os
import random
import zipfile
import zlib

import boto3
import pytest

from animl_ingest_cli.batchjob import entries as ent
from animl_ingest_cli.batchjob.zipread import Pinned, ReadStats, S3RangeReader

BUCKET = "zips"


class Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes data descriptors (flag bit 3) after each entry."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # noqa: ANN001
        return self.buf.write(b)


def put(s3, key: str, data: bytes) -> tuple[int, str]:  # noqa: ANN001
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    return head["ContentLength"], head["ETag"].strip('"')


@pytest.fixture
def s3(aws_mock):  # noqa: ANN001
    client = boto3.client("s3", region_name="us-west-2")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return client


def reader(s3, key: str, **kw) -> S3RangeReader:  # noqa: ANN001
    size, etag = put(s3, key, kw.pop("data"))
    return S3RangeReader(s3, BUCKET, key, size, etag, **kw)


def contents() -> dict[str, bytes]:
    rng = random.Random(3)
    return {"empty.jpg": b"", "one.jpg": b"x",
            "noise.jpg": rng.randbytes(300_000),          # incompressible
            "zeros.jpg": bytes(250_000),                   # compresses to almost nothing
            "text.png": b"".join(b"line %d\n" % i for i in range(20_000))}


@pytest.mark.parametrize("block,readahead", [(7, 13), (4096, 10_000), (256 << 10, 8 << 20)])
@pytest.mark.parametrize("kind", ["deflated", "stored", "zip64", "descriptors"])
def test_every_entry_reads_back_through_ranged_gets(s3, kind: str, block: int, readahead: int) -> None:  # noqa: ANN001
    """Entries cross the reader's block and GET boundaries at every size (7-byte blocks: every
    header and every deflate chunk is split), with and without windows."""
    files = contents()
    out: io.IOBase = Unseekable() if kind == "descriptors" else io.BytesIO()
    method = zipfile.ZIP_STORED if kind == "stored" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w", method) as z:  # type: ignore[arg-type]
        for name, data in files.items():
            with z.open(name, "w", force_zip64=(kind == "zip64")) as fh:
                fh.write(data)
    data = out.buf.getvalue() if isinstance(out, Unseekable) else out.getvalue()  # type: ignore[union-attr]
    stats = ReadStats()
    fh = reader(s3, f"{kind}.zip", data=data, block=block, readahead=readahead, stats=stats)
    z = zipfile.ZipFile(fh)
    infos = z.infolist()
    if kind == "descriptors":
        assert all(i.flag_bits & 0x08 for i in infos)
    if kind == "zip64":
        assert data.count(b"\x01\x00\x10\x00") >= len(files)  # each local header's zip64 extra field
    offsets = sorted(i.header_offset for i in infos) + [z.start_dir]
    for info in infos:
        nxt = offsets[offsets.index(info.header_offset) + 1]
        if block > 7:
            fh.set_window(info.header_offset, nxt)
        with z.open(info) as entry:
            assert entry.read() == files[info.filename], info.filename
    if block > 4096:  # one GET for the tail (EOCD + central directory), at most one per entry
        assert stats.gets <= 1 + len(infos)
        assert stats.bytes <= len(data) * 2  # the tail, and each entry's extent once


def test_many_entries_use_the_zip64_end_record(s3) -> None:  # noqa: ANN001
    """65,536 entries need zip64's end-of-central-directory record; the tail is read in one GET
    and shared by every reader of the zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for i in range(65_536):
            z.writestr(f"d/{i}.jpg", b"")
    data = buf.getvalue()
    assert zipfile._EndRecData64 is not None and b"PK\x06\x06" in data[-200:]
    pinned, stats = Pinned(), ReadStats()
    first = reader(s3, "many.zip", data=data, pinned=pinned, stats=stats)
    size, etag = first.size, first.etag
    assert len(zipfile.ZipFile(first).infolist()) == 65_536
    gets = stats.gets
    again = S3RangeReader(s3, BUCKET, "many.zip", size, etag, pinned=pinned, stats=stats)
    again.seek(size - 22)
    assert again.read(4) == b"PK\x05\x06" and stats.gets == gets  # from the shared tail


def test_a_zip_replaced_while_read_fails_loudly(s3) -> None:  # noqa: ANN001
    from animl_ingest_cli.errors import StoreError

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.jpg", os.urandom(3 << 20))
    fh = reader(s3, "r.zip", data=buf.getvalue())
    z = zipfile.ZipFile(fh)
    s3.put_object(Bucket=BUCKET, Key="r.zip", Body=b"another upload")
    with pytest.raises(StoreError, match="changed while it was read"):
        z.open("a.jpg").read()


# --- entry rules ---------------------------------------------------------------------------------
def raw_names_zip(names: list[bytes]) -> bytes:
    """A zip (no UTF-8 flag) whose entry names are exactly these bytes: written under placeholders
    of the same length, which are then replaced (so every offset stays right)."""
    placeholders = [(f"{i}" + "q" * (len(raw) - 4 - len(str(i)))).encode() + b".jpg"
                    for i, raw in enumerate(names)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, old in enumerate(placeholders):
            z.writestr(old.decode(), b"img %d" % i)
    data = buf.getvalue()
    for raw, old in zip(names, placeholders, strict=True):
        data = data.replace(old, raw)
    return data


def test_names_are_utf8_whatever_the_flag_says() -> None:
    """macOS and Windows tools write UTF-8 names without the flag; the Node job read them as UTF-8
    (zipfile says cp437); bytes that are not UTF-8 become U+FFFD, as in Node."""
    names = ["Cámara 1/ñandú.jpg".encode(), b"caf\xe9/img\xff\xfe.jpg"]
    z = zipfile.ZipFile(io.BytesIO(raw_names_zip(names)))
    assert not any(i.flag_bits & ent.UTF8_FLAG for i in z.infolist())
    assert z.infolist()[0].filename == names[0].decode("cp437")  # what zipfile alone would give
    planned = ent.plan(z.infolist())
    assert [e.path for e in planned] == ["Cámara 1/ñandú.jpg", "caf\ufffd/img\ufffd\ufffd.jpg"]
    assert all(e.written for e in planned)
    with z.open(z.infolist()[0]) as fh:  # the entry still opens (its local header matches)
        assert fh.read() == b"img 0"


def zip_of(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries:
            z.writestr(name, data)
    return zipfile.ZipFile(io.BytesIO(buf.getvalue()))


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_dot_slash_is_normalised_not_hidden_and_duplicates_are_kept() -> None:
    link = zipfile.ZipInfo("cam/link.jpg")
    link.external_attr = 0o120777 << 16
    deflate64 = zipfile.ZipInfo("cam/d64.jpg")
    z = zip_of([("./DCIM/100/IMG_0001.JPG", b"one"), ("DCIM//100/IMG_0002.JPG", b"two"),
                ("a/IMG.JPG", b"first"), ("a/IMG.JPG", b"appended later"), ("a/IMG.JPG", b"first"),
                ("./a/IMG.JPG", b"third"), ("a/IMG-2.JPG", b"a real -2"),
                ("DCIM/", b""), ("DCIM/.DS_Store", b"x"), ("._x.jpg", b"x"), ("__MACOSX/a/._IMG.JPG", b"x"),
                ("../up.jpg", b"x"), ("/abs.jpg", b"x"), ("notes.txt", b"x"), (link, b"/etc/passwd"),
                (deflate64, b"d")])
    infos = z.infolist()
    infos[-1].compress_type = 9  # Deflate64, as Windows writes for large zips
    plan = ent.plan(infos, prefix="batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f/")
    by = [(e.name, e.path, e.problem, e.note) for e in plan]
    assert by[:7] == [
        ("./DCIM/100/IMG_0001.JPG", "DCIM/100/IMG_0001.JPG", None, None),
        ("DCIM//100/IMG_0002.JPG", "DCIM/100/IMG_0002.JPG", None, None),
        ("a/IMG.JPG", "a/IMG.JPG", None, None),
        ("a/IMG.JPG", "a/IMG-3.JPG", None, ent.RENAMED),      # -2 is a real entry's name
        ("a/IMG.JPG", "a/IMG.JPG", ent.IDENTICAL, None),      # same bytes as the first: once
        ("./a/IMG.JPG", "a/IMG-4.JPG", None, ent.RENAMED),
        ("a/IMG-2.JPG", "a/IMG-2.JPG", None, None)]
    assert [e.problem for e in plan[7:]] == [ent.DIRECTORY, ent.HIDDEN, ent.HIDDEN, ent.MACOSX, ent.ESCAPES,
                                            ent.ABSOLUTE, ent.UNSUPPORTED, ent.SYMLINK, ent.COMPRESSION]
    assert ent.total(plan) == 6 + 1  # six written, one image that cannot be read (Deflate64)
    lines = ent.reports(plan)
    assert len(lines) == 9  # one per kind; directories are not reported
    assert "2 zip entries written under another name: renamed: another entry has the same name: " \
           "a/IMG.JPG -> a/IMG-3.JPG, ./a/IMG.JPG -> a/IMG-4.JPG" in lines
    assert any(line.startswith("1 zip entry could not be read (the zip is kept): unsupported compression")
               for line in lines)
    assert "2 zip entries skipped: hidden file: DCIM/.DS_Store, ._x.jpg" in lines


def test_a_key_over_s3s_limit_is_an_entry_that_fails() -> None:
    z = zip_of([("d/" + "x" * 1000 + ".jpg", b"1")])
    (e,) = ent.plan(z.infolist(), prefix="batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f/")
    assert e.problem == ent.KEY_TOO_LONG and e.failed and ent.total([e]) == 1


def test_crc_of_a_stored_entry_is_checked(s3) -> None:  # noqa: ANN001
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.jpg", b"hello world")
    data = buf.getvalue().replace(b"hello world", b"hello_world")
    z = zipfile.ZipFile(reader(s3, "bad.zip", data=data))
    with pytest.raises(zipfile.BadZipFile, match="CRC"):
        z.open("a.jpg").read()
    assert zlib.crc32(b"hello world") == z.getinfo("a.jpg").CRC
