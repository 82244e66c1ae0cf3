"""Unpark against moto's server: wall time, objects per second and S3 requests per object, beside
`aws s3 mv --recursive` between the same buckets on the same server.

Each run starts from a reset server with N small objects (awkward keys: spaces, `+`, `%`, `#`, `?`,
unicode, batch prefixes) in the dev parking lot and the maintenance flag `false`. Wall time is taken
straight against moto; the request counts come from a second run of each tool through the counting
proxy (the proxy adds a cost per request, which would tilt the timing toward the tool that makes
fewer requests). Every run is checked: the parking lot empty, every key in the ingestion bucket with
its original bytes (ETag), content type and metadata.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from measure import fake_aws_env, parse_jsonl, run_measured
from s3proxy import CountingProxy

STAGE = "dev"
LOT = f"animl-images-parkinglot-{STAGE}"
INGESTION = f"animl-images-ingestion-{STAGE}"
OTHER_BUCKETS = [f"animl-images-serving-{STAGE}", f"animl-images-dead-letter-{STAGE}"]
REGION = "us-west-2"


def awkward_key(i: int) -> str:
    batch = uuid.UUID(int=(i // 500) + 1, version=4)
    forms = [
        f"IMG {i:05d}.JPG",
        f"batch-{batch}/site A/cam+{i % 7}/RCNX{i:05d}.JPG",
        f"cam%20{i % 5}/pic #{i}?.jpeg",
        f"ñandú/日本 {i}-é&=.png",
        f"quote'{i}\"+plus+.jpg",
        f"batch-{batch}/{i:05d} (copy) [1].jpg",
    ]
    return forms[i % len(forms)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(endpoint: str, scratch: Path) -> dict[str, str]:
    # The flag was written "off" moments ago by seed(); unpark would first wait out the ingest
    # function's 15 s cache (its guard in a real deployment, where `maintenance off` already waited).
    # There is no ingest function here, so the bench times the moving, not that guard.
    return fake_aws_env(scratch, AWS_ENDPOINT_URL=endpoint, PYTHONUNBUFFERED="1",
                        ANIML_MAINTENANCE_WAIT_SECONDS="0")


def _clients(endpoint: str):  # noqa: ANN202
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION)
    cfg = Config(max_pool_connections=32, retries={"max_attempts": 5, "mode": "standard"})
    return session.client("s3", endpoint_url=endpoint, config=cfg), session.client(
        "ssm", endpoint_url=endpoint, config=cfg)


def seed(endpoint: str, count: int) -> dict[str, str]:
    """A fresh server: the stage's buckets, the flag off, `count` objects parked. Returns key -> etag."""
    import requests

    requests.post(f"{endpoint}/moto-api/reset", timeout=30)
    s3, ssm = _clients(endpoint)
    for b in [LOT, INGESTION, *OTHER_BUCKETS]:
        s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": REGION})
    ssm.put_parameter(Name=f"/images/maintenance-mode-{STAGE}", Value="false", Type="String",
                      Overwrite=True)

    def put(i: int) -> tuple[str, str]:
        key = awkward_key(i)
        body = i.to_bytes(4, "big") * (256 + i % 512)
        ctype = "image/png" if key.endswith(".png") else "image/jpeg"
        r = s3.put_object(Bucket=LOT, Key=key, Body=body, ContentType=ctype,
                          Metadata={"bench-index": str(i)})
        return key, r["ETag"].strip('"')

    with ThreadPoolExecutor(32) as pool:
        etags = dict(pool.map(put, range(count)))
    assert len(etags) == count, "awkward keys collided"
    return etags


def verify(endpoint: str, etags: dict[str, str], check_meta: bool) -> list[str]:
    """Problems left after a move: objects still parked, missing or changed in the ingestion bucket."""
    s3, _ = _clients(endpoint)
    problems = []
    left = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=LOT)
            for o in page.get("Contents", [])]
    if left:
        problems.append(f"{len(left)} objects still in the parking lot (e.g. {left[0]!r})")
    moved = {o["Key"]: o["ETag"].strip('"')
             for page in s3.get_paginator("list_objects_v2").paginate(Bucket=INGESTION)
             for o in page.get("Contents", [])}
    missing = [k for k in etags if k not in moved]
    changed = [k for k in etags if k in moved and moved[k] != etags[k]]
    if missing:
        problems.append(f"{len(missing)} keys missing from the ingestion bucket (e.g. {missing[0]!r})")
    if changed:
        problems.append(f"{len(changed)} objects changed bytes (e.g. {changed[0]!r})")
    if check_meta:
        for key in list(etags)[:30]:
            if key not in moved:
                continue
            h = s3.head_object(Bucket=INGESTION, Key=key)
            want = "image/png" if key.endswith(".png") else "image/jpeg"
            if h.get("ContentType") != want or "bench-index" not in h.get("Metadata", {}):
                problems.append(f"{key!r} lost its content type or metadata: {h.get('ContentType')} "
                                f"{h.get('Metadata')}")
                break
    return problems


def unpark_available(cli: list[str], env: dict[str, str]) -> str | None:
    """None when `animl-ingest unpark` is built, else why not."""
    r = run_measured([*cli, "unpark", "--help"], env=env, timeout=120)
    text = r.stdout + r.stderr
    if r.returncode != 0:
        return f"`animl-ingest unpark --help` exited {r.returncode}: {text.strip()[-300:]}"
    if "not built yet" in text.lower() or "--yes" not in text:
        return "`animl-ingest unpark` is not built on this checkout yet"
    return None


def run(count: int, cli: list[str], log=print) -> dict:  # noqa: ANN001
    """The whole unpark comparison; returns the results (skips are recorded with their reason)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    tmp = Path(tempfile.mkdtemp(prefix="animl-bench-unpark-"))
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    results: dict = {"objects": count}
    aws_cli = shutil.which("aws")
    try:
        env = base_env(endpoint, tmp)
        why = unpark_available(cli, env)
        tools: dict[str, list[str]] = {}
        if why:
            log(f"unpark: skipped ({why})")
            results["unpark_skipped"] = why
        else:
            tools["unpark"] = [*cli, "unpark", "--stage", STAGE, "--yes", "--json"]
        if aws_cli:
            tools["aws s3 mv"] = [aws_cli, "s3", "mv", "--recursive", f"s3://{LOT}", f"s3://{INGESTION}",
                                  "--only-show-errors", "--region", REGION]
        else:
            msg = "the aws CLI is not on PATH (pip install awscli into the bench venv to compare)"
            log(f"aws s3 mv: skipped ({msg})")
            results["aws_skipped"] = msg
        with CountingProxy(endpoint) as proxy:
            for name, argv in tools.items():
                out: dict = {}
                for route, url in (("direct", endpoint), ("counted", proxy.url)):
                    etags = seed(endpoint, count)
                    proxy.reset()
                    argv_run = [*argv, "--endpoint-url", url] if name.startswith("aws") else argv
                    log(f"{name}: {count} objects, {route} ...")
                    m = run_measured(argv_run, env=base_env(url, tmp), timeout=1800)
                    problems = verify(endpoint, etags, check_meta=True)
                    res = {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "objects_per_s": count / m.wall_s,
                           "exit": m.returncode, "problems": problems}
                    if route == "counted":
                        counts = proxy.snapshot()
                        res["requests"] = counts
                        res["requests_per_object"] = {k: v / count for k, v in sorted(counts.items())}
                        res["errors"] = dict(proxy.errors)
                        if name == "unpark":
                            res["own_summary"] = parse_jsonl(m.stdout)[1]
                    if m.returncode != 0:
                        res["stderr_tail"] = m.stderr[-1500:]
                    out[route] = res
                results[name] = out
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


if __name__ == "__main__":
    import json

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(json.dumps(run(n, [sys.executable, "-m", "animl_ingest_cli"]), indent=2))
