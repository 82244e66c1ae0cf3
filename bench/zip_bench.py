"""The bulk-upload job on a big zip, streamed from moto's server, against "download, then extract".

    .venv/bin/python bench/zip_bench.py                      # 5,200 entries of ~420 KB: ~2.2 GB
    .venv/bin/python bench/zip_bench.py --entries 500        # a quick look

1. moto's server runs in a child process (`--serve`). moto answers a ranged GET by reading the whole
   object and slicing it (and scans the body with a regex): on a 2 GB object every GET would cost
   seconds. The child patches exactly that (a ranged GET reads only its range from moto's own
   buffer); everything else is moto as shipped.
2. The zip is generated straight into a multipart upload (no file on disk): camera-trap-size entries
   (a JPEG header over random bytes, so nothing compresses), half stored and half deflated, 64
   distinct bodies compressed once and reused under 5,200 names (the job cares about names and
   bytes, not about distinct pixels), CRCs computed once.
3. **Baseline**, what the Node job did: download the zip to a temporary folder (boto3's transfer
   manager), then read it with `zipfile` and PUT each image with the same number of workers.
4. **The job**: `animl-ingest batch run` (STAGE=dev, TASK as the ingest function submits it) against
   the same server, with the animl-api stand-in, a per-batch stack, every entry written.

Each run is a child process, measured from outside by bench/measure.py: wall time, bytes written to
disk (`/proc/<pid>/io` write_bytes) and peak RSS (`/proc/<pid>/status` VmHWM), sampled until exit.
Results go to bench/out/zip.json and a table on stdout. Exit 1 when a run failed or an entry is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STAGE = "dev"
BATCH = "batch-5e0c2a10-7d3c-4e8e-9d4b-3f1f1c2e52a4"
ZIP = BATCH + ".zip"
ING = f"animl-images-ingestion-{STAGE}"
BASELINE = "bench-download-then-extract"
PART = 64 << 20


# --- moto's server, with ranged GETs that read only the range ----------------------------------------
def serve(port: int) -> None:
    from moto.s3 import models, responses
    from moto.server import ThreadedMotoServer

    local = threading.local()

    class RangeView:
        """What moto slices for a ranged GET: reads only the slice from the key's buffer."""

        def __init__(self, key: Any) -> None:
            self.key = key

        def __len__(self) -> int:
            return int(self.key.contentsize)

        def __bool__(self) -> bool:
            return len(self) > 0

        def __getitem__(self, s: slice) -> bytes:
            start, stop, _ = s.indices(len(self))
            with self.key.lock:
                self.key._value_buffer.seek(start)
                return bytes(self.key._value_buffer.read(max(0, stop - start)))

    value = models.FakeKey.value

    def lazy_value(self: Any) -> Any:
        return RangeView(self) if getattr(local, "ranged", False) else value.fget(self)

    models.FakeKey.value = property(lazy_value, value.fset)  # type: ignore[method-assign]
    original_get = responses.S3Response._key_response_get

    def key_get(self: Any, *args: Any, **kwargs: Any) -> Any:
        local.ranged = bool(self.headers.get("range"))
        try:
            return original_get(self, *args, **kwargs)
        finally:
            local.ranged = False

    responses.S3Response._key_response_get = key_get  # type: ignore[method-assign]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    threading.Event().wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the zip ---------------------------------------------------------------------------------------
def bodies(n: int, size: int, seed: int = 7) -> list[tuple[bytes, int, bytes]]:
    """(body, crc, deflated) x n: a JPEG's first bytes, then random bytes (nothing compresses)."""
    rng = random.Random(seed)
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    out = []
    for _ in range(n):
        body = head + rng.randbytes(size - len(head) - 2) + b"\xff\xd9"
        c = zlib.compressobj(1, zlib.DEFLATED, -15)
        out.append((body, zlib.crc32(body), c.compress(body) + c.flush()))
    return out


def generate(s3: Any, entries: int, entry_kb: int) -> tuple[int, float]:
    """Write the zip into a multipart upload; (its size, seconds)."""
    t0 = time.monotonic()
    pool = bodies(64, entry_kb * 1024)
    up = s3.create_multipart_upload(Bucket=ING, Key=ZIP, ContentType="application/zip")
    parts: list[dict[str, Any]] = []
    buf = bytearray()
    central = bytearray()
    offset = 0

    def flush(final: bool = False) -> None:
        nonlocal buf
        while len(buf) >= PART or (final and buf):
            chunk, buf = bytes(buf[:PART]), buf[PART:]
            r = s3.upload_part(Bucket=ING, Key=ZIP, UploadId=up["UploadId"], PartNumber=len(parts) + 1,
                               Body=chunk)
            parts.append({"PartNumber": len(parts) + 1, "ETag": r["ETag"]})
            print(f"  part {len(parts)}: {time.monotonic() - t0:.0f} s", flush=True)

    for i in range(entries):
        body, crc, deflated = pool[i % len(pool)]
        method, data = (zipfile.ZIP_DEFLATED, deflated) if i % 2 else (zipfile.ZIP_STORED, body)
        name = f"site {i // 1000}/cam {i % 7}/DCIM/100RECNX/IMG_{i:05d}.JPG".encode()
        fields = (20, 0, method, 0, 0x21, crc, len(data), len(body), len(name), 0)
        buf += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + name
        buf += data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, offset) + name
        offset += 30 + len(name) + len(data)
        flush()
    assert offset + len(central) < 0xFFFFFFFF, "no zip64 records in this generator: fewer entries"
    buf += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, len(central), offset, 0)
    size = offset + len(central) + 22
    flush(final=True)
    s3.complete_multipart_upload(Bucket=ING, Key=ZIP, UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    return size, time.monotonic() - t0


# --- the baseline (in a child process) ----------------------------------------------------------------
def baseline(workers: int) -> None:
    import boto3

    s3 = boto3.client("s3", region_name="us-west-2")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.zip"
        s3.download_file(ING, ZIP, str(path))
        with zipfile.ZipFile(path) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            lock = threading.Lock()

            def put(info: zipfile.ZipInfo) -> None:
                with lock:  # one ZipFile: reads one at a time, uploads side by side
                    data = z.read(info)
                s3.put_object(Bucket=BASELINE, Key=f"{BATCH}/{info.filename}", Body=data)

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(put, infos))
    print(json.dumps({"written": len(infos)}))


# --- measuring a child (bench/measure.py) ------------------------------------------------------------
def measure(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """`run_measured`'s figures as zip.json keeps them: wall seconds, the child's own peak RSS
    (VmHWM), bytes written to disk, and the tails of its output."""
    m = run_measured(cmd, env=env, cwd=REPO, timeout=6 * 3600)
    return {"exit": m.returncode, "seconds": round(m.wall_s, 1), "peak_rss_mb": round(m.hwm_mb, 1),
            "disk_written_mb": round(m.disk_written_mb, 1), "stdout_tail": m.stdout[-2000:],
            "stderr_tail": m.stderr[-1500:]}


def count(s3: Any, bucket: str, prefix: str) -> int:
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        n += sum(1 for o in page.get("Contents", []) if "/.animl-progress/" not in o["Key"])
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=5200)
    ap.add_argument("--entry-kb", type=int, default=420)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "zip.json")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.baseline:
        baseline(args.workers)
        return 0

    sys.path.insert(0, str(REPO))
    import boto3

    from tests.apistub import ApiStub
    from tests.batchjob.batchstacks import inference_function

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-west-2", AWS_REGION="us-west-2")
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = env[name]
    tmp = Path(tempfile.mkdtemp(prefix="zipbench-"))
    stub = ApiStub(tmp / "catalog.sqlite").start()
    results: dict[str, Any] = {"entries": args.entries, "entry_kb": args.entry_kb, "workers": args.workers}
    try:
        from botocore.config import Config

        slow = Config(read_timeout=1800, retries={"max_attempts": 1})  # moto joins 2 GB of parts
        c = {n: boto3.client(n, region_name="us-west-2", endpoint_url=endpoint, config=slow)
             for n in ("s3", "ssm", "iam", "lambda")}
        for bucket in [f"animl-images-{k}-{STAGE}" for k in ("ingestion", "serving", "dead-letter",
                                                              "parkinglot")] + [BASELINE]:
            c["s3"].create_bucket(Bucket=bucket,
                                  CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        c["ssm"].put_parameter(Name=f"/api/url-{STAGE}", Value=stub.url, Type="String")
        inference_function(STAGE, c["iam"], c["lambda"])
        size, gen_s = generate(c["s3"], args.entries, args.entry_kb)
        results.update(zip_bytes=size, zip_gb=round(size / 1e9, 2), generate_seconds=round(gen_s, 1))
        print(f"zip: {size / 1e9:.2f} GB, {args.entries} entries, generated in {gen_s:.0f} s", flush=True)

        base = measure([sys.executable, __file__, "--baseline", "--workers", str(args.workers)], env)
        base["entries_written"] = count(c["s3"], BASELINE, BATCH + "/")
        results["download_then_extract"] = base
        print(f"download, then extract: {base['seconds']} s, peak {base['peak_rss_mb']} MB, "
              f"disk {base['disk_written_mb']} MB", flush=True)

        task = json.dumps({"Bucket": ING, "Key": ZIP, "FileName": ZIP, "batchId": BATCH, "errors": []})
        job = measure([sys.executable, "-m", "animl_ingest_cli", "batch", "run", "--json",
                       "--workers", str(args.workers)],
                      dict(env, STAGE=STAGE, TASK=task, API_KEY=stub.api_key))
        job["entries_written"] = count(c["s3"], ING, BATCH + "/")
        try:
            job["result"] = json.loads(job["stdout_tail"].strip().splitlines()[-1])
        except (ValueError, IndexError):
            job["result"] = None
        results["job"] = job
        print(f"batch run (ranged GETs): {job['seconds']} s, peak {job['peak_rss_mb']} MB, "
              f"disk {job['disk_written_mb']} MB", flush=True)
    finally:
        stub.stop()
        server.terminate()
        server.wait(timeout=30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    ok = all(results[k]["exit"] == 0 and results[k]["entries_written"] == args.entries
             for k in ("download_then_extract", "job"))
    print("\n| run | wall s | peak RSS MB | disk written MB | entries |\n|---|---|---|---|---|")
    for k in ("download_then_extract", "job"):
        r = results[k]
        print(f"| {k} | {r['seconds']} | {r['peak_rss_mb']} | {r['disk_written_mb']} | "
              f"{r['entries_written']} |")
    print(f"results: {args.out}")
    if not ok:
        print("a run failed or an entry is missing: see", args.out, file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
