"""Ingest and unpark at a distance: what S3 and animl-api latency cost, with default options.

    python bench/latency_bench.py [--images 60] [--runs 5] [--s3-delay-ms 40] [--api-delay-ms 250]
                                  [--unpark-objects 1000] [--memory 150,600] [--skip PART]

Everything runs on loopback: moto's server, a proxy in front of it that adds a fixed delay to every
request (S3 and SSM: bench/s3proxy.py), and the animl-api stand-in (tests/apistub.py) answering
createImage after a fixed delay. Each ingest run starts from a reset server with the images in the
dev stage's ingestion bucket and a fresh catalog, then runs, as a new user would,

    animl-ingest ingest s3://animl-images-ingestion-dev/ --stage dev --yes --json

(no option), and must exit 0 with every image served, its three serving copies written and the
ingestion bucket empty. Runs alternate between no added delay ("loopback": the same proxy and
stand-in with 0 ms) and the delays, so a change in the machine's load falls on both; the figure is
the ratio of the medians (goal: <= 1.15). Peak memory: the same command under the delays for two
numbers of images (goal: flat). Unpark: N small objects parked, moved back with `animl-ingest
unpark --stage dev --yes --json` and with `aws s3 mv --recursive` through the same delayed proxy
(the aws CLI is skipped with a message when it is not on PATH).

Results: a table on stdout and OUT/latency.json (OUT defaults to bench/out).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO))

import gen_images  # noqa: E402
import unpark_bench  # noqa: E402
from measure import Measured, exit_status, fake_aws_env, parse_jsonl, run_measured  # noqa: E402
from s3proxy import CountingProxy  # noqa: E402

CLI = [sys.executable, "-m", "animl_ingest_cli"]
STAGE = unpark_bench.STAGE
INGESTION = unpark_bench.INGESTION
SERVING = f"animl-images-serving-{STAGE}"
CLAIMS = ".animl-claims/"  # the per-image claims (animl_ingest_cli/claims.py) live beside the copies
GOAL = 1.15


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class BenchFailure(Exception):
    pass


def seed_images(endpoint: str, images: dict[str, bytes], api_url: str) -> None:
    """A reset server: the stage's buckets, the API URL and the maintenance flag, the images in the
    ingestion bucket (written straight to moto, not through the delayed proxy)."""
    from concurrent.futures import ThreadPoolExecutor

    unpark_bench.seed(endpoint, 0)
    s3, ssm = unpark_bench._clients(endpoint)
    ssm.put_parameter(Name=f"/api/url-{STAGE}", Value=api_url, Type="String", Overwrite=True)

    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=INGESTION, Key=item[0], Body=item[1], ContentType="image/jpeg")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, images.items()))


def check_served(endpoint: str, n: int, m: Measured) -> list[str]:
    items, _ = parse_jsonl(m.stdout)
    problems = []
    served = sum(1 for o in items if o.get("outcome") == "served")
    if m.returncode != 0 or served != n:
        others = [f"{o.get('key')}: {o.get('outcome')} {o.get('reason') or o.get('error') or ''}"
                  for o in items if o.get("outcome") != "served"][:3]
        problems.append(f"exit {m.returncode}, served {served} of {n}; {others}; "
                        f"stderr: {m.stderr.strip()[-600:]}")
    s3, _ = unpark_bench._clients(endpoint)
    left = s3.list_objects_v2(Bucket=INGESTION).get("KeyCount", 0)
    copies = sum(1 for page in s3.get_paginator("list_objects_v2").paginate(Bucket=SERVING)
                 for o in page.get("Contents", []) if not o["Key"].startswith(CLAIMS))
    if left:
        problems.append(f"{left} objects left in the ingestion bucket")
    if copies != 3 * n:
        problems.append(f"{copies} serving copies, expected {3 * n}")
    return problems


def ingest_once(endpoint: str, images: dict[str, bytes], scratch: Path, s3_delay: float,
                api_delay: float, extra: list[str]) -> dict[str, Any]:
    from tests.apistub import ApiStub

    db = Path(tempfile.mkdtemp(dir=scratch)) / "catalog.sqlite"
    stub = ApiStub(db).start()
    stub.delays["createImage"] = api_delay
    try:
        seed_images(endpoint, images, stub.url)
        with CountingProxy(endpoint, delay=s3_delay) as proxy:
            env = fake_aws_env(scratch, AWS_ENDPOINT_URL=proxy.url, API_KEY=stub.api_key,
                               PYTHONUNBUFFERED="1")
            argv = [*CLI, "ingest", f"s3://{INGESTION}/", "--stage", STAGE, "--yes", "--json", *extra]
            m = run_measured(argv, env=env, timeout=1800)
            requests = proxy.snapshot()
        problems = check_served(endpoint, len(images), m)
        peak_api = stub.peak_in_flight.get("createImage", 0)
    finally:
        stub.stop()
    if problems:
        raise BenchFailure("; ".join(problems))
    n = len(images)
    return {"images": n, "wall_s": m.wall_s, "cpu_s": m.cpu_s, "cpu_s_per_image": m.cpu_s / n,
            "images_per_s": n / m.wall_s, "maxrss_mb": m.maxrss_mb, "tree_peak_mb": m.tree_peak_mb,
            "requests": sum(requests.values()), "peak_createImage_in_flight": peak_api}


def load_images(n: int, out: Path) -> dict[str, bytes]:
    paths = gen_images.ensure_set(out / "images" / f"2mp-{n}", "2mp", n, log=log)
    return {f"cam {i % 4}/{p.name}": p.read_bytes() for i, p in enumerate(paths)}


def ingest_part(endpoint: str, scratch: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    images = load_images(args.images, out)
    s3_delay, api_delay = args.s3_delay_ms / 1000, args.api_delay_ms / 1000
    runs: dict[str, list[dict[str, Any]]] = {"loopback": [], "latency": []}
    for i in range(args.runs):
        for mode in ("loopback", "latency"):
            d = (s3_delay, api_delay) if mode == "latency" else (0.0, 0.0)
            log(f"ingest s3:// [{mode} {i + 1}/{args.runs}]: {len(images)} images ...")
            r = ingest_once(endpoint, images, scratch, *d, extra=[])
            log(f"  {r['wall_s']:.2f} s, {r['cpu_s_per_image']:.3f} CPU s/img")
            runs[mode].append(r)
    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
    return {"images": len(images), "desc": "1600x1200 camera-trap JPEGs q90 (bench/gen_images.py 2mp)",
            "s3_delay_ms": args.s3_delay_ms, "api_delay_ms": args.api_delay_ms, "runs": runs,
            "median_wall_s": med, "ratio": med["latency"] / med["loopback"],
            "median_images_per_s": {k: len(images) / v for k, v in med.items()},
            "median_cpu_s_per_image": {k: statistics.median(r["cpu_s_per_image"] for r in v)
                                       for k, v in runs.items()}}


def memory_part(endpoint: str, scratch: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    counts = sorted(int(x) for x in args.memory.split(","))
    runs = []
    for n in counts:
        images = load_images(n, out)
        log(f"peak memory: {n} images under the delays ...")
        runs.append(ingest_once(endpoint, images, scratch, args.s3_delay_ms / 1000,
                                args.api_delay_ms / 1000, extra=[]))
    # the sampled PSS of the command's tree: wait4's ru_maxrss also counts this process as it was
    # when forked for the command (moto's server holds every image here), so it grows with the set
    peak = [r["tree_peak_mb"] for r in runs]
    return {"runs": runs, "peak_mb": peak, "growth": peak[-1] / peak[0] - 1}


def unpark_part(endpoint: str, scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    n = args.unpark_objects
    delay = args.s3_delay_ms / 1000
    env = unpark_bench.base_env(endpoint, scratch)
    tools: dict[str, list[str]] = {}
    res: dict[str, Any] = {"objects": n, "s3_delay_ms": args.s3_delay_ms}
    why = unpark_bench.unpark_available(CLI, env)
    if why:
        res["unpark_skipped"] = why
        log(f"unpark: skipped ({why})")
    else:
        tools["unpark"] = [*CLI, "unpark", "--stage", STAGE, "--yes", "--json"]
    aws = shutil.which("aws")
    if aws:
        tools["aws s3 mv"] = [aws, "s3", "mv", "--recursive", f"s3://{unpark_bench.LOT}",
                              f"s3://{INGESTION}", "--only-show-errors", "--region", unpark_bench.REGION]
    else:
        res["aws_skipped"] = "the aws CLI is not on PATH (pip install awscli into a venv to compare)"
        log(f"aws s3 mv: skipped ({res['aws_skipped']})")
    for name, argv in tools.items():
        etags = unpark_bench.seed(endpoint, n)
        with CountingProxy(endpoint, delay=delay) as proxy:
            run = [*argv, "--endpoint-url", proxy.url] if name.startswith("aws") else argv
            log(f"{name}: {n} objects, +{args.s3_delay_ms} ms a request ...")
            m = run_measured(run, env=unpark_bench.base_env(proxy.url, scratch), timeout=1800)
            counts = proxy.snapshot()
        problems = unpark_bench.verify(endpoint, etags, check_meta=True)
        res[name] = {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "objects_per_s": n / m.wall_s,
                     "exit": m.returncode, "problems": problems, "requests": counts,
                     "stderr_tail": m.stderr[-800:] if m.returncode else ""}
        log(f"  {m.wall_s:.2f} s, {n / m.wall_s:.0f} objects/s, exit {m.returncode} {problems or ''}")
    if "unpark" in res and "aws s3 mv" in res:
        res["ratio"] = res["unpark"]["wall_s"] / res["aws s3 mv"]["wall_s"]
    return res


def report(res: dict[str, Any]) -> str:
    lines = [f"machine: {res['machine']}"]
    ing = res.get("ingest")
    if ing:
        lines.append(f"\ningest s3:// of {ing['images']} images, default options, "
                     f"+{ing['s3_delay_ms']} ms a request to S3/SSM, "
                     f"+{ing['api_delay_ms']} ms a createImage, "
                     f"{len(ing['runs']['loopback'])} alternating runs each")
        for mode in ("loopback", "latency"):
            walls = ", ".join(f"{r['wall_s']:.2f}" for r in ing["runs"][mode])
            lines.append(f"  {mode:8}  median {ing['median_wall_s'][mode]:.2f} s "
                         f"({ing['median_images_per_s'][mode]:.1f} img/s, "
                         f"{ing['median_cpu_s_per_image'][mode]:.3f} CPU s/img)  runs: {walls}")
        lines.append(f"  latency / loopback: {ing['ratio']:.3f} "
                     f"({'meets' if ing['ratio'] <= GOAL else 'MISSES'} the goal <= {GOAL})")
    mem = res.get("memory")
    if mem:
        desc = ", ".join(f"{r['images']} images {p:.0f} MB" for r, p in zip(mem["runs"], mem["peak_mb"],
                                                                              strict=True))
        lines.append(f"\npeak memory under the delays, default options: {desc} ({mem['growth']:+.1%})")
    up = res.get("unpark")
    if up:
        lines.append(f"\nunpark of {up['objects']} objects, +{up['s3_delay_ms']} ms a request")
        for name in ("unpark", "aws s3 mv"):
            if name in up:
                r = up[name]
                total = sum(r["requests"].values())
                lines.append(f"  {name:10} {r['wall_s']:6.2f} s  {r['objects_per_s']:6.0f} obj/s  "
                             f"{total / up['objects']:.3f} requests/obj  exit {r['exit']} "
                             f"{'ok' if not r['problems'] else r['problems']}")
        if "ratio" in up:
            lines.append(f"  unpark / aws s3 mv wall time: {up['ratio']:.2f} "
                         f"({'meets' if up['ratio'] <= 1 else 'MISSES'} the goal <= 1)")
        for key in ("unpark_skipped", "aws_skipped"):
            if key in up:
                lines.append(f"  {key.replace('_', ' ')}: {up[key]}")
    return "\n".join(lines)


def main() -> int:
    import logging
    import os

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--runs", type=int, default=5, help="alternating runs of each mode (medians)")
    ap.add_argument("--s3-delay-ms", type=float, default=40.0)
    ap.add_argument("--api-delay-ms", type=float, default=250.0)
    ap.add_argument("--unpark-objects", type=int, default=1000)
    ap.add_argument("--memory", default="150,600",
                    help="image counts for the peak-memory runs (both above the 64 images in flight)")
    ap.add_argument("--skip", action="append", default=[], choices=["ingest", "memory", "unpark"])
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args()

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="animl-bench-latency-"))
    port = unpark_bench._free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    res: dict[str, Any] = {"machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start, "
                                      f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}"}
    failed = None
    try:
        if "ingest" not in args.skip:
            res["ingest"] = ingest_part(endpoint, scratch, args, out)
        if "memory" not in args.skip:
            res["memory"] = memory_part(endpoint, scratch, args, out)
        if "unpark" not in args.skip:
            res["unpark"] = unpark_part(endpoint, scratch, args)
    except BenchFailure as exc:
        failed = str(exc)
        res["failed"] = failed
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    res["machine"] += f", load {os.getloadavg()[0]:.1f} at end"
    (out / "latency.json").write_text(json.dumps(res, indent=2, default=str))
    print(report(res))
    up = res.get("unpark", {})
    return exit_status(failed, {t: [up[t]] for t in ("unpark", "aws s3 mv") if t in up})


if __name__ == "__main__":
    sys.exit(main())
