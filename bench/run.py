"""The throughput bench: local-stage ingest (1 worker and all cores), the Node original's image work
on the same images, peak memory for a small and a large folder, and unpark against moto's server.

    python bench/run.py [--quick] [--images N] [--workers N] [--out DIR] [--profile N]

Run it with the project's venv (`.venv/bin/python bench/run.py`): it needs the project installed
(`pip install -e '.[test]'`, which brings Pillow, moto and piexif). bench/README.md says what each
number means. Results: a table on stdout and DIR/results.json (DIR defaults to bench/out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import gen_images  # noqa: E402
from measure import Measured, exit_status, fake_aws_env, parse_jsonl, run_measured  # noqa: E402

CLI = [sys.executable, "-m", "animl_ingest_cli"]
NODE_DIR = HERE / "node"
GOAL_RATIO = 0.20


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the ingest command --------------------------------------------------------------------------
def ingest_env(run_dir: Path) -> dict[str, str]:
    """A fresh local stage for each run: nothing left from an earlier run (no duplicates)."""
    return fake_aws_env(run_dir, ANIML_LOCAL_DIR=str(run_dir / "animl-local"))


class BenchFailure(Exception):
    pass


def run_ingest(name: str, folder: Path, n_images: int, workers: int, out: Path, keep: bool) -> dict:
    """One measured `animl-ingest ingest FOLDER --stage local --json --concurrency K`; every image
    must come out served and the command must exit 0, or the bench stops."""
    run_dir = out / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    argv = [*CLI, "ingest", str(folder), "--stage", "local", "--json", "--concurrency", str(workers)]
    log(f"ingest [{name}]: {n_images} images, --concurrency {workers} ...")
    m = run_measured(argv, env=ingest_env(run_dir), cwd=run_dir)
    items, summary = parse_jsonl(m.stdout)
    served = sum(1 for o in items if o.get("outcome") == "served")
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    if m.returncode != 0 or served != n_images:
        others = [f"{o.get('key')}: {o.get('outcome')} {o.get('reason') or o.get('error') or ''}"
                  for o in items if o.get("outcome") != "served"][:5]
        raise BenchFailure(f"ingest [{name}] exit {m.returncode}, served {served} of {n_images}; "
                           f"{others}; stderr: {m.stderr.strip()[-1500:]}")
    return _figures(m, n_images) | {"workers": workers, "served": served, "summary": summary}


def _figures(m: Measured, n: int) -> dict:
    return {"images": n, "wall_s": m.wall_s, "cpu_s": m.cpu_s, "user_s": m.user_s, "sys_s": m.sys_s,
            "images_per_s": n / m.wall_s, "cpu_s_per_image": m.cpu_s / n, "maxrss_mb": m.maxrss_mb,
            "tree_peak_mb": m.tree_peak_mb, "max_processes": m.max_processes}


def startup_cost() -> dict:
    """What starting the command costs with no image at all (`--help`): part of every run's CPU."""
    m = run_measured([*CLI, "ingest", "--help"], env=ingest_env(Path("/nonexistent")))
    return {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "maxrss_mb": m.maxrss_mb}


# --- the Node original ---------------------------------------------------------------------------
def node_ready() -> tuple[list[str] | None, str | None]:
    node = shutil.which("node")
    if not node:
        return None, "node is not on PATH"
    if not (NODE_DIR / "node_modules" / "sharp").is_dir():
        npm = shutil.which("npm")
        if not npm:
            return None, "npm is not on PATH, so sharp cannot be installed"
        log("installing sharp into bench/node/node_modules (npm) ...")
        r = subprocess.run([npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not (NODE_DIR / "node_modules" / "sharp").is_dir():
            return None, f"npm install of sharp failed: {(r.stderr or r.stdout).strip()[-800:]}"
    probe = subprocess.run([node, "-e", "import('sharp').then(s => console.log(s.default.versions.vips))"],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        return None, f"sharp does not load: {probe.stderr.strip()[-800:]}"
    return [node, str(NODE_DIR / "work.mjs")], None


def run_node(cmd: list[str], folder: Path, n_images: int, out: Path) -> dict:
    target = out / "runs" / "node-thumbnails"
    shutil.rmtree(target, ignore_errors=True)
    log(f"node original: {n_images} images, one after another ...")
    m = run_measured([*cmd, str(folder), str(target)], cwd=NODE_DIR)
    shutil.rmtree(target, ignore_errors=True)
    if m.returncode != 0:
        raise BenchFailure(f"node work.mjs exit {m.returncode}: {m.stderr.strip()[-1500:]}")
    info = json.loads(m.stdout.strip().splitlines()[-1])
    if info["images"] != n_images or info["distinct"] != n_images:
        raise BenchFailure(f"node saw {info['images']} images ({info['distinct']} distinct), "
                           f"expected {n_images}")
    empty = out / "runs" / "node-empty"
    empty.mkdir(parents=True, exist_ok=True)
    s = run_measured([*cmd, str(empty), str(target)], cwd=NODE_DIR)  # start-up: node + sharp, no image
    shutil.rmtree(target, ignore_errors=True)
    return _figures(m, n_images) | {"sharp": info.get("sharp"), "vips": info.get("vips"),
                                    "sharp_concurrency": info.get("concurrency"),
                                    "startup": {"wall_s": s.wall_s, "cpu_s": s.cpu_s}}


# --- profile ---------------------------------------------------------------------------------------
def run_profile(folder: Path, out: Path) -> dict:
    run_dir = out / "runs" / "profile"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    prof, text = out / "profile.prof", out / "profile.txt"
    argv = [sys.executable, str(HERE / "profile_ingest.py"), str(prof), str(text), "--",
            "ingest", str(folder), "--stage", "local", "--json", "--concurrency", "1"]
    log(f"profile: {folder} with one worker ...")
    m = run_measured(argv, env=ingest_env(run_dir), cwd=run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    if m.returncode != 0:
        raise BenchFailure(f"profile run exit {m.returncode}: {m.stderr.strip()[-1500:]}")
    return {"prof": str(prof), "text": str(text), "wall_s": m.wall_s, "cpu_s": m.cpu_s}


# --- report ----------------------------------------------------------------------------------------
def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import PIL

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "load_at_start": os.getloadavg()[0],
            "python": platform.python_version(),
            "pillow": PIL.__version__, "commit": commit + ("-dirty" if dirty else ""),
            "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def fmt_row(cols: list[str], widths: list[int]) -> str:
    pairs = enumerate(zip(cols, widths, strict=True))
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [title, fmt_row(header, widths), fmt_row(["-" * w for w in widths], widths)]
    lines += [fmt_row(r, widths) for r in rows]
    return "\n".join(lines)


def report(res: dict) -> str:
    out = []
    mach = res["machine"]
    out.append(f"machine: {mach['cpus']} CPUs ({mach['cpu_model']}), Python {mach['python']}, "
               f"Pillow {mach['pillow']}, checkout {mach['commit']}, {mach['when']}")
    busy = max(mach["load_at_start"], mach.get("load_at_end", 0.0))
    if busy > 0.5 * (mach["cpus"] or 1):
        out.append(f"WARNING: load average {mach['load_at_start']:.1f} at start, "
                   f"{mach.get('load_at_end', 0.0):.1f} at end on {mach['cpus']} CPUs: other work shares "
                   f"this machine, so wall times and scaling are unreliable (CPU seconds much less so)")
    main = res.get("main_set")
    if main:
        out.append(f"main set: {main['images']} images ({main['desc']}), {main['mb']:.0f} MB")
    rows = []
    for key in ("ingest_1", "ingest_all", "node"):
        r = res.get(key)
        if not r:
            continue
        label = {"ingest_1": "ingest, 1 worker", "ingest_all": f"ingest, {r.get('workers')} workers",
                 "node": f"node original (sharp {r.get('sharp')}), sequential"}[key]
        rows.append([label, f"{r['wall_s']:.2f}", f"{r['images_per_s']:.2f}", f"{r['cpu_s']:.2f}",
                     f"{r['cpu_s_per_image']:.3f}", f"{r['maxrss_mb']:.0f}", f"{r['tree_peak_mb']:.0f}"])
    if rows:
        out.append(table("\nthroughput (same images)",
                         ["run", "wall s", "img/s", "CPU s", "CPU s/img", "maxrss MB", "tree MB"], rows))
    if "startup" in res:
        s = res["startup"]
        out.append(f"(command start-up alone, `ingest --help`: {s['cpu_s']:.2f} CPU s, "
                   f"{s['maxrss_mb']:.0f} MB; included in every ingest figure above)")
    if res.get("ingest_1") and res.get("ingest_all"):
        speedup = res["ingest_all"]["images_per_s"] / res["ingest_1"]["images_per_s"]
        w = res["ingest_all"]["workers"]
        out.append(f"scaling: {speedup:.2f}x with {w} workers ({speedup / w:.0%} of linear)")
    if "ratio" in res:
        r = res["ratio"]
        verdict = "meets" if r["worst"] <= GOAL_RATIO else "MISSES"
        out.append(f"CPU ratio ours/node: {r['ingest_1']:.3f} (1 worker), {r['ingest_all']:.3f} "
                   f"(all workers); worst {r['worst']:.3f} {verdict} the goal <= {GOAL_RATIO}")
        out.append(f"  (with each side's start-up CPU taken out, best run: {r['without_startup']:.3f}; "
                   f"node start-up {res['node']['startup']['cpu_s']:.2f} CPU s)")
    elif "node_skipped" in res:
        out.append(f"node comparison skipped: {res['node_skipped']}")
    mem = res.get("memory")
    if mem:
        rows = [[f"{r['images']} images", f"{r['wall_s']:.1f}", f"{r['images_per_s']:.2f}",
                 f"{r['maxrss_mb']:.0f}", f"{r['tree_peak_mb']:.0f}"] for r in mem["runs"]]
        out.append(table(f"\npeak memory ({mem['desc']}, --concurrency {mem['workers']})",
                         ["run", "wall s", "img/s", "maxrss MB", "tree MB"], rows))
        g = mem["growth"]
        verdict = "meets" if g <= 0.10 else "MISSES"
        out.append(f"growth small -> large: {g:+.1%} ({verdict} the goal: within 10%)")
    up = res.get("unpark")
    if up:
        out.append(unpark_report(up))
    if res.get("profile"):
        out.append(f"\nprofile: {res['profile']['text']} (pstats file {res['profile']['prof']})")
    return "\n".join(out)


def unpark_report(up: dict) -> str:
    rows, lines = [], []
    for tool in ("unpark", "aws s3 mv"):
        r = up.get(tool)
        if not r:
            continue
        d, c = r["direct"], r.get("counted", {})
        per = c.get("requests_per_object", {})
        reqs = ", ".join(f"{k} {v:.4g}" for k, v in per.items())
        ok = "ok" if d["exit"] == 0 and not d["problems"] and not c.get("problems") else "FAILED"
        rows.append([tool, f"{d['wall_s']:.2f}", f"{d['objects_per_s']:.0f}", f"{d['cpu_s']:.2f}", ok, reqs])
        for p in d["problems"] + c.get("problems", []):
            lines.append(f"  {tool}: {p}")
        if d["exit"] != 0:
            lines.append(f"  {tool} exited {d['exit']}: {d.get('stderr_tail', '')[-300:]}")
    out = []
    if rows:
        out.append(table(f"\nunpark of {up['objects']} objects against moto's server",
                         ["tool", "wall s", "obj/s", "CPU s", "check", "requests per object"], rows))
    if "unpark" in up and "aws s3 mv" in up:
        a, b = up["unpark"]["direct"]["wall_s"], up["aws s3 mv"]["direct"]["wall_s"]
        out.append(f"unpark / aws s3 mv wall time: {a / b:.2f} ({'meets' if a <= b else 'MISSES'} "
                   f"the goal: no slower)")
    own = up.get("unpark", {}).get("counted", {}).get("own_summary")
    if own:
        out.append(f"unpark's own summary: {json.dumps(own)[:400]}")
    for key in ("unpark_skipped", "aws_skipped"):
        if key in up:
            out.append(f"{key.replace('_', ' ')}: {up[key]}")
    return "\n".join(out + lines)


def markdown(res: dict) -> str:
    """The README "Performance" table for these results (written to OUT/performance.md)."""
    rows = []
    i1, ia, node = res.get("ingest_1"), res.get("ingest_all"), res.get("node")
    if i1 and ia:
        rows.append(("CPU seconds per image, whole local-stage ingest",
                     f"{i1['cpu_s_per_image']:.3f} (1 worker), {ia['cpu_s_per_image']:.3f} "
                     f"({ia['workers']} workers)", ""))
    if node:
        rows.append(("CPU seconds per image, Node original's image work (sharp "
                     f"{node['sharp']}, libvips {node['vips']})", f"{node['cpu_s_per_image']:.3f}", ""))
    if "ratio" in res:
        r = res["ratio"]
        rows.append(("CPU ratio ingest / Node, same images",
                     f"**{r['worst']:.3f}** (1 worker {r['ingest_1']:.3f}, {ia['workers']} workers "
                     f"{r['ingest_all']:.3f}; start-up of each side taken out {r['without_startup']:.3f})",
                     f"<= {GOAL_RATIO}"))
    if i1 and ia:
        sp = ia["images_per_s"] / i1["images_per_s"]
        rows.append(("images per second", f"{i1['images_per_s']:.1f} (1 worker), {ia['images_per_s']:.1f} "
                     f"({ia['workers']} workers): {sp:.2f}x", "near-linear"))
    if "startup" in res:
        rows.append(("command start-up (`ingest --help`)", f"{res['startup']['cpu_s']:.2f} CPU s", ""))
    mem = res.get("memory")
    if mem:
        a, b = mem["runs"][0], mem["runs"][-1]
        peak = [max(x["maxrss_mb"], x["tree_peak_mb"]) for x in (a, b)]
        rows.append((f"peak memory, {a['images']} and {b['images']} images (3 MP, {mem['workers']} workers)",
                     f"{peak[0]:.0f} MB and {peak[1]:.0f} MB ({mem['growth']:+.1%})", "equal within 10%"))
    up = res.get("unpark", {})
    n = up.get("objects")
    if "unpark" in up:
        d = up["unpark"]["direct"]
        per = up["unpark"].get("counted", {}).get("requests_per_object", {})
        rows.append((f"unpark of {n} objects (moto server)", f"{d['wall_s']:.1f} s, "
                     f"{d['objects_per_s']:.0f} objects/s", ""))
        rows.append(("unpark requests per object", ", ".join(f"{k} {v:.4g}" for k, v in per.items()),
                     "1 copy + 1/1000 delete + listing"))
    if "aws s3 mv" in up:
        d = up["aws s3 mv"]["direct"]
        per = up["aws s3 mv"].get("counted", {}).get("requests_per_object", {})
        rows.append((f"`aws s3 mv --recursive`, same {n} objects", f"{d['wall_s']:.1f} s, "
                     f"{d['objects_per_s']:.0f} objects/s; "
                     + ", ".join(f"{k} {v:.4g}" for k, v in per.items()), ""))
        if "unpark" in up:
            ratio = up["unpark"]["direct"]["wall_s"] / d["wall_s"]
            rows.append(("unpark / `aws s3 mv` wall time", f"{ratio:.2f}", "<= 1"))
    m = res["machine"]
    head = (f"{m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, Pillow {m['pillow']}, "
            f"checkout {m['commit']}, {m['when']}; main set {res.get('main_set', {}).get('images')} images")
    lines = [f"Measured on {head}.", "", "| | measured | goal |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


# --- main ----------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sets: a smoke run of every part")
    ap.add_argument("--images", type=int, help="images in the main set (default 60, quick 12)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="workers for the all-cores runs (default: every CPU)")
    ap.add_argument("--out", type=Path, default=HERE / "out", help="cache, runs and results.json")
    ap.add_argument("--memory", default=None,
                    help="image counts for the peak-memory runs (default 100,1000; quick 30,300)")
    ap.add_argument("--unpark-objects", type=int, help="objects to unpark (default 3000, quick 300)")
    ap.add_argument("--profile", type=int, default=None,
                    help="cProfile one worker over N large images (default 20, quick 0 = off)")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["ingest", "node", "memory", "unpark"], help="leave a part out")
    ap.add_argument("--keep", action="store_true", help="keep each run's local stage under OUT/runs")
    args = ap.parse_args()

    n_main = args.images or (12 if args.quick else 60)
    mem_counts = sorted(int(x) for x in (args.memory or ("30,300" if args.quick else "100,1000")).split(","))
    n_unpark = args.unpark_objects or (300 if args.quick else 3000)
    n_profile = args.profile if args.profile is not None else (0 if args.quick else 20)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "images"
    res: dict = {"machine": machine(), "args": {k: (str(v) if isinstance(v, Path) else v)
                                                for k, v in vars(args).items()}}
    failed = None
    try:
        if "ingest" not in args.skip or "node" not in args.skip:
            paths = gen_images.ensure_set(cache / f"mixed-{n_main}", "mixed", n_main, log=log)
            folder = paths[0].parent
            res["main_set"] = {"images": n_main, "folder": str(folder),
                               "desc": "3/12/16 MP JPEG q90 in turn, every tenth a 3 MP PNG",
                               "mb": sum(p.stat().st_size for p in paths) / 1e6}
            if "ingest" not in args.skip:
                res["startup"] = startup_cost()
                res["ingest_1"] = run_ingest("one", folder, n_main, 1, out, args.keep)
                res["ingest_all"] = run_ingest("all", folder, n_main, args.workers, out, args.keep)
            if "node" not in args.skip:
                cmd, why = node_ready()
                if cmd is None:
                    log(f"node comparison skipped: {why}")
                    res["node_skipped"] = why
                else:
                    res["node"] = run_node(cmd, folder, n_main, out)
                    if "ingest_1" in res:
                        node_cpu = res["node"]["cpu_s"]
                        r1, ra = res["ingest_1"]["cpu_s"] / node_cpu, res["ingest_all"]["cpu_s"] / node_cpu
                        ours_start, node_start = res["startup"]["cpu_s"], res["node"]["startup"]["cpu_s"]
                        steady = ((min(res["ingest_1"]["cpu_s"], res["ingest_all"]["cpu_s"]) - ours_start)
                                  / (node_cpu - node_start))
                        res["ratio"] = {"ingest_1": r1, "ingest_all": ra, "worst": max(r1, ra),
                                        "goal": GOAL_RATIO, "without_startup": steady}
        if "memory" not in args.skip:
            big = gen_images.ensure_set(cache / f"3mp-{mem_counts[-1]}", "3mp", mem_counts[-1], log=log)
            runs = []
            for n in mem_counts:
                folder = big[0].parent if n == len(big) else gen_images.link_subset(
                    big[:n], cache / f"3mp-{mem_counts[-1]}-first-{n}")
                runs.append(run_ingest(f"mem-{n}", folder, n, args.workers, out, args.keep))
            peak = [max(r["maxrss_mb"], r["tree_peak_mb"]) for r in runs]
            res["memory"] = {"desc": "3 MP JPEG q90 (2048x1536), the smallest camera size keeps the "
                                     "1000-image run short; the first N images of one set",
                             "workers": args.workers, "runs": runs, "growth": peak[-1] / peak[0] - 1}
        if n_profile and "ingest" not in args.skip:
            large = gen_images.ensure_set(cache / f"large-{n_profile}", "large", n_profile, log=log)
            res["profile"] = run_profile(large[0].parent, out)
        if "unpark" not in args.skip:
            import unpark_bench

            res["unpark"] = unpark_bench.run(n_unpark, CLI, log=log)
    except BenchFailure as exc:
        failed = str(exc)
        res["failed"] = failed
    res["machine"]["load_at_end"] = os.getloadavg()[0]
    (out / "results.json").write_text(json.dumps(res, indent=2, default=str))
    (out / "performance.md").write_text(markdown(res))
    print(report(res))
    if res.get("profile"):
        print("\n" + Path(res["profile"]["text"]).read_text())
    print(f"\nresults: {out / 'results.json'}")
    up = res.get("unpark", {})
    return exit_status(failed, {t: list(up.get(t, {}).values()) for t in ("unpark", "aws s3 mv")})


if __name__ == "__main__":
    sys.exit(main())
