"""The Lambda's cold start: importing the handler, then its first invocation, then a warm one.

    python bench/lambda_cold.py [--runs 5] [--records 1] [--s3-delay-ms 0] [--api-delay-ms 0]

Each run is a fresh interpreter (what a new Lambda execution environment is): it times
`import animl_ingest_cli.lambda_handler`, then `handler(event)` for an S3 ObjectCreated event of
`--records` 1600x1200 camera-trap JPEGs in the dev ingestion bucket (moto's server on loopback, the
animl-api stand-in), which builds the boto3 clients, reads the SSM parameters, and serves each image;
then a second invocation with new images (warm). It also lists the modules the import brings in that
take the longest (`python -X importtime`), and checks that each image was served.

Results: a table on stdout and OUT/lambda_cold.json (OUT defaults to bench/out).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO))

import gen_images  # noqa: E402
import unpark_bench  # noqa: E402
from measure import fake_aws_env  # noqa: E402
from s3proxy import CountingProxy  # noqa: E402

CHILD = r"""
import json, sys, time, urllib.parse
t0 = time.perf_counter()
import animl_ingest_cli.lambda_handler as h
t1 = time.perf_counter()
modules_after_import = len(sys.modules)
def event(keys):
    return {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": sys.argv[1]},
                                "object": {"key": urllib.parse.quote_plus(k, safe="/"), "size": 1}}}
                        for k in keys]}
n = int(sys.argv[2])
first = h.handler(event([f"cold/{i}.jpg" for i in range(n)]))
t2 = time.perf_counter()
warm = h.handler(event([f"warm/{i}.jpg" for i in range(n)]))
t3 = time.perf_counter()
heavy = [m for m in ("boto3", "PIL.Image", "requests", "sqlite3", "zipfile", "typer", "rich")
         if m in sys.modules]
print(json.dumps({"import_s": t1 - t0, "first_s": t2 - t1, "warm_s": t3 - t2,
                  "modules_after_import": modules_after_import, "loaded": heavy,
                  "first": first["outcomes"], "warm": warm["outcomes"]}))
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def seed(endpoint: str, images: list[bytes], n: int, api_url: str) -> None:
    unpark_bench.seed(endpoint, 0)
    s3, ssm = unpark_bench._clients(endpoint)
    ssm.put_parameter(Name="/api/url-dev", Value=api_url, Type="String", Overwrite=True)
    for phase in ("cold", "warm"):
        for i in range(n):
            s3.put_object(Bucket=unpark_bench.INGESTION, Key=f"{phase}/{i}.jpg",
                          Body=images[(i + (n if phase == "warm" else 0)) % len(images)],
                          ContentType="image/jpeg")


def import_profile(env: dict[str, str]) -> list[tuple[str, float]]:
    """The handler's import under -X importtime: each package it brings in (the project's modules
    one by one), by its largest cumulative time in ms."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import animl_ingest_cli.lambda_handler"],
                       env=env, capture_output=True, text=True, timeout=120)
    top: dict[str, float] = {}
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if not m or m.group(2) in ("animl_ingest_cli.lambda_handler", "site"):
            continue
        name = m.group(2) if m.group(2).startswith("animl") else m.group(2).split(".")[0]
        top[name] = max(top.get(name, 0.0), int(m.group(1)) / 1000)
    return sorted(top.items(), key=lambda kv: -kv[1])[:15]


def main() -> int:
    import logging

    from moto.server import ThreadedMotoServer

    from tests.apistub import ApiStub

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--records", type=int, default=1, help="records (images) per invocation")
    ap.add_argument("--s3-delay-ms", type=float, default=0.0)
    ap.add_argument("--api-delay-ms", type=float, default=0.0)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = gen_images.ensure_set(out / "images" / "2mp-60", "2mp", 60, log=log)
    images = [p.read_bytes() for p in paths]
    scratch = Path(tempfile.mkdtemp(prefix="animl-bench-cold-"))
    port = unpark_bench._free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    runs: list[dict[str, Any]] = []
    try:
        for i in range(args.runs):
            stub = ApiStub(scratch / f"catalog-{i}.sqlite").start()
            stub.delays["createImage"] = args.api_delay_ms / 1000
            try:
                seed(endpoint, images[i:] + images[:i], args.records, stub.url)
                with CountingProxy(endpoint, delay=args.s3_delay_ms / 1000) as proxy:
                    env = fake_aws_env(scratch, AWS_ENDPOINT_URL=proxy.url, API_KEY=stub.api_key,
                                       STAGE="dev", LOG_LEVEL="WARNING",
                                       AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024")
                    r = subprocess.run([sys.executable, "-c", CHILD, unpark_bench.INGESTION,
                                        str(args.records)], env=env, capture_output=True, text=True,
                                       timeout=300)
            finally:
                stub.stop()
            if r.returncode != 0:
                print(f"BENCH FAILED: the handler exited {r.returncode}: {r.stderr[-1500:]}", file=sys.stderr)
                return 1
            res = json.loads(r.stdout.strip().splitlines()[-1])
            if res["first"].get("served") != args.records or res["warm"].get("served") != args.records:
                print(f"BENCH FAILED: not every image served: {res}", file=sys.stderr)
                return 1
            log(f"run {i + 1}: import {res['import_s'] * 1000:.0f} ms, first invocation "
                f"{res['first_s'] * 1000:.0f} ms, warm {res['warm_s'] * 1000:.0f} ms")
            runs.append(res)
        profile = import_profile(fake_aws_env(scratch))
    finally:
        server.stop()
    med = {k: statistics.median(r[k] for r in runs) for k in ("import_s", "first_s", "warm_s")}
    result = {"runs": runs, "median": med, "records": args.records, "s3_delay_ms": args.s3_delay_ms,
              "api_delay_ms": args.api_delay_ms, "import_profile_ms": profile,
              "loaded_after_two_invocations": runs[-1]["loaded"],
              "modules_after_import": runs[-1]["modules_after_import"]}
    (out / "lambda_cold.json").write_text(json.dumps(result, indent=2))
    print(f"Lambda cold start, {args.records} record(s) an invocation, medians of {len(runs)} fresh "
          f"interpreters (+{args.s3_delay_ms:.0f} ms S3, +{args.api_delay_ms:.0f} ms createImage):")
    print(f"  import of the handler   {med['import_s'] * 1000:7.0f} ms "
          f"({result['modules_after_import']} modules)")
    print(f"  first invocation        {med['first_s'] * 1000:7.0f} ms (boto3 clients, SSM, the images)")
    print(f"  cold start total        {(med['import_s'] + med['first_s']) * 1000:7.0f} ms")
    print(f"  warm invocation         {med['warm_s'] * 1000:7.0f} ms")
    print("  slowest imports (cumulative ms): " + ", ".join(f"{k} {v:.0f}" for k, v in profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
