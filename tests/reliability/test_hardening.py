"""The edges an adversary finds beyond the races (issue 16), against moto's server and the animl-api
stand-in: each ends with every object accounted for, one line of message and the documented exit
code. The local stage's full disk is a real tmpfs (when this runs as root), its malformed
parameters are real files.

- writes outside the stage's own buckets (a dev redrive into prod) are refused unless asked for,
  and prod always asks for its confirmation;
- the stage's own dead-letter, serving and parking-lot buckets are not sources;
- keys under the tool's own prefixes are escaped, and come back unchanged;
- dead-letter folders come from a closed vocabulary; the detail goes into the metadata;
- the API answering ids that are not the image's dead-letters that image, never stops the run;
- API keys: short ones redacted, unsendable ones refused once, before the first image.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from animl_ingest_cli import keys
from animl_ingest_cli.api import GraphQLApi
from animl_ingest_cli.ingest import DEAD_LETTERED, FAILED, PARKED, SERVED, Ingestor
from animl_ingest_cli.ops.deadletter import list_errors, redrive
from animl_ingest_cli.ops.unpark import unpark
from animl_ingest_cli.sources import iter_work, parse_sources
from tests.apistub import ODD_ANSWERS, ApiStub
from tests.conftest import REPO
from tests.ops.helpers import run_cli
from tests.reliability.conftest import BUCKETS, STAGE, World, jpeg, md5

Capsys = pytest.CaptureFixture[str]
Patch = pytest.MonkeyPatch
PROD_INGESTION = "animl-images-ingestion-prod"


def dead_letters(world: World) -> dict[str, dict[str, str]]:
    """Dead-letter key -> its metadata, unquoted."""
    out = {}
    for key in world.keys("dead-letter"):
        head = world.s3.head_object(Bucket=BUCKETS["dead-letter"], Key=key)
        out[key] = {k: unquote(v) for k, v in head["Metadata"].items()}
    return out


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def one_error_line(err: str) -> str:
    """The one `error: ...` line (after a prompt, when there was one)."""
    lines = [line[line.index("error:"):] for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- 1. a dev command never writes into prod unasked ---------------------------------------------------

def test_a_dev_redrive_writes_into_prod_only_when_named_and_confirmed(
        served_world: World, capsys: Capsys, monkeypatch: Patch) -> None:
    world = served_world
    world.s3.create_bucket(Bucket=PROD_INGESTION,
                           CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    images = {f"cam/IMG {i}.jpg": jpeg(700 + i) for i in range(2)}
    for key, data in images.items():
        world.s3.put_object(Bucket=PROD_INGESTION, Key=key, Body=data)
    # a dev ingest of the prod bucket with a key the API refuses: dead letters that say prod
    ctx = world.ctx()
    ingestor = Ingestor(ctx, GraphQLApi(world.stub.url, "not-the-key", max_attempts=1))
    for item in iter_work(ctx, parse_sources([f"s3://{PROD_INGESTION}/"])):
        [o] = ingestor.process(item.store, item.key, delete_source=item.delete_source)
        assert o.outcome == DEAD_LETTERED
    for key in images:  # the prod function consumed them since
        world.s3.delete_object(Bucket=PROD_INGESTION, Key=key)
    assert {m["original-bucket"] for m in dead_letters(world).values()} == {PROD_INGESTION}

    def prod_keys() -> list[str]:
        return sorted(o["Key"] for o in world.s3.list_objects_v2(Bucket=PROD_INGESTION).get("Contents", []))

    redrive_args = ("deadletter", "redrive", "--stage", "dev", "--error", "Forbidden", "--json")
    r = run_cli(capsys, monkeypatch, *redrive_args)
    assert r.code == 1, r.err  # some objects could not be moved
    failed = [o for o in json_lines(r.out) if o.get("status") == "failed"]
    assert len(failed) == 2 and all("--allow-foreign-bucket animl-images-ingestion-prod" in o["detail"]
                                    for o in failed), r.out
    assert prod_keys() == [] and len(world.keys("dead-letter")) == 2

    allow = ("--allow-foreign-bucket", PROD_INGESTION)
    r = run_cli(capsys, monkeypatch, *redrive_args, *allow, stdin="dev\n")  # the wrong answer
    assert r.code == 3 and "prod" in one_error_line(r.err)
    assert prod_keys() == [] and len(world.keys("dead-letter")) == 2

    r = run_cli(capsys, monkeypatch, *redrive_args, *allow, stdin="prod\n")
    assert r.code == 0, r.err
    assert "Type the stage name (prod)" in " ".join(r.err.split())
    assert prod_keys() == sorted(images) and world.keys("dead-letter") == []
    for key, data in images.items():
        body = world.s3.get_object(Bucket=PROD_INGESTION, Key=key)["Body"].read()
        assert md5(body) == md5(data)


def test_a_prod_bucket_without_its_confirmation_is_refused_before_anything_moves(world: World) -> None:
    world.put("cam/a.jpg", jpeg(1, serial=None))
    world.ingest()
    assert world.keys("dead-letter")
    from animl_ingest_cli.errors import RefusedError

    with pytest.raises(RefusedError, match="prod confirmation"):
        redrive(world.ctx(), keys.UNKNOWN_SERIAL, allow_buckets=[PROD_INGESTION])
    assert len(world.keys("dead-letter")) == 1 and world.keys("ingestion") == []


# --- 2. the stage's own output buckets are not sources -------------------------------------------------

def test_ingesting_the_stages_own_output_buckets_is_refused(
        served_world: World, capsys: Capsys, monkeypatch: Patch) -> None:
    world = served_world
    world.put_many((f"cam/x{i}.jpg", jpeg(10 + i, serial=None)) for i in range(3))
    world.ingest()  # three dead letters
    world.put("cam/p.jpg", jpeg(20), kind="parkinglot")
    before = {k: world.keys(k) for k in BUCKETS}
    calls = len(world.stub.calls("createImage"))
    for kind, pointer in [("dead-letter", "deadletter redrive"), ("parkinglot", "unpark"),
                          ("serving", "served already")]:
        r = run_cli(capsys, monkeypatch, "ingest", f"s3://{BUCKETS[kind]}/", "--stage", STAGE, "--yes")
        assert r.code == 2
        line = one_error_line(r.err)
        assert f"{STAGE}'s {kind} bucket" in line and pointer in line
    assert {k: world.keys(k) for k in BUCKETS} == before  # 3 dead letters stay 3
    assert len(world.stub.calls("createImage")) == calls


def test_the_local_stages_bucket_folders_are_not_sources() -> None:
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.errors import InputError
    from animl_ingest_cli.sources import refuse_stage_outputs

    ctx = open_stage("local")
    assert ctx.local_root is not None
    dead = ctx.local_root / "buckets" / "animl-images-dead-letter-local" / "Forbidden"
    dead.mkdir(parents=True)
    for path, says in [(dead, "dead-letter bucket"), (ctx.local_root, "holds local's")]:
        with pytest.raises(InputError, match=says):
            refuse_stage_outputs(ctx, parse_sources([str(path)]))
    refuse_stage_outputs(ctx, parse_sources([str(REPO / "examples" / "images")]))  # any other folder: fine


# --- 3. keys under the tool's own prefixes -------------------------------------------------------------

def test_a_key_under_the_staging_prefix_is_parked_escaped_and_unparked_to_itself(
        served_world: World, monkeypatch: Patch) -> None:
    world = served_world
    monkeypatch.setenv("ANIML_MAINTENANCE_WAIT_SECONDS", "0")
    user = {".animl-moving/a.jpg": jpeg(31), "a.jpg": jpeg(32),
            ".animl-key/b.jpg": jpeg(33), "b.jpg": jpeg(34)}
    world.put_many(user.items())
    world.maintenance(True)
    parked = world.ingest()
    assert {o.outcome for o in parked.values()} == {PARKED}
    assert "reserves" in (parked[".animl-moving/a.jpg"].reason or "")
    lot = set(world.keys("parkinglot"))
    assert lot == {".animl-key/.animl-moving/a.jpg", "a.jpg", ".animl-key/.animl-key/b.jpg", "b.jpg"}
    world.maintenance(False)
    summary = unpark(world.ctx(), sleep=lambda s: None)
    assert summary.moved == 4 and summary.failed == 0
    assert world.keys("parkinglot") == []
    for key, data in user.items():  # each back under its own key, with its own bytes: none overwritten
        body = world.s3.get_object(Bucket=BUCKETS["ingestion"], Key=key)["Body"].read()
        assert md5(body) == md5(data), key
    served = world.ingest()
    assert {o.outcome for o in served.values()} == {SERVED}
    world.check(served)


def test_a_local_bucket_has_no_hidden_names_of_the_tools_own(tmp_path: Path) -> None:
    from animl_ingest_cli.stores import LocalStore

    store = LocalStore(tmp_path / "buckets" / "b", "b", tmp_path / ".meta" / "b")
    store.put(".tmp-1.jpg", b"mine", "image/jpeg")
    store.put("cam/.tmp-2.jpg", b"mine too", "image/jpeg")
    assert [i.key for i in store.list()] == [".tmp-1.jpg", "cam/.tmp-2.jpg"]


# --- 5. dead-letter folders: a closed vocabulary ---------------------------------------------------------

def test_a_store_error_dead_letters_under_one_folder_with_the_detail_in_metadata(served_world: World) -> None:
    world = served_world
    missing = "animl-images-serving-missing"
    world.ssm.put_parameter(Name=f"/images/serving-bucket-{STAGE}", Value=missing, Type="String")
    world.put_many((f"cam {i}/IMG {i}.jpg", jpeg(40 + i)) for i in range(3))
    out = world.ingest()
    assert {o.outcome for o in out.values()} == {DEAD_LETTERED}
    assert {o.reason for o in out.values()} == {keys.STORAGE_ERROR}
    assert all(f"s3://{missing}/" in (o.error or "") for o in out.values()), [o.error for o in out.values()]
    letters = dead_letters(world)
    assert {k.split("/", 1)[0] for k in letters} == {keys.STORAGE_ERROR}
    for key, meta in letters.items():
        assert missing not in key and "no such bucket" in meta["error"] and missing in meta["error"]
    assert [f.error for f in list_errors(world.ctx())] == [keys.STORAGE_ERROR]
    # fixed, redriven, ingested: served
    world.ssm.delete_parameter(Name=f"/images/serving-bucket-{STAGE}")
    healed = world.heal()
    assert {o.outcome for o in healed.values()} == {SERVED}
    world.check(healed)


def test_an_odd_api_error_body_is_api_error_never_a_folder_of_its_own(world: World) -> None:
    world.put("cam/a.jpg", jpeg(50))
    world.api_fault("fail", 502, times=99, body="<html>upstream s3://some-bucket/cam/a.jpg: 502</html>")
    out = world.ingest()["cam/a.jpg"]
    assert out.outcome == DEAD_LETTERED and out.reason == keys.API_ERROR and "upstream" in (out.error or "")
    [(key, meta)] = dead_letters(world).items()
    assert key.startswith("API_ERROR/UNKNOWN_ID/") and "upstream s3://some-bucket" in meta["error"]


# --- 7. createImage answers that are not this image's -----------------------------------------------------

def test_image_ids_not_of_their_image_dead_letter_them_and_the_run_goes_on(served_world: World) -> None:
    """Each odd answer in turn (the same id for every image, null without errors, another hash's
    id, an id with a `/`), then the real answers."""
    world = served_world
    images = {f"cam/IMG {i}.jpg": jpeg(60 + i) for i in range(len(ODD_ANSWERS) + 2)}
    world.put_many(images.items())
    for odd in ODD_ANSWERS:
        world.api_fault("odd_answer", odd)
    out = world.ingest(concurrency=1)
    assert len(out) == len(images)
    bad = [o for o in out.values() if o.outcome == DEAD_LETTERED]
    good = [k for k, o in out.items() if o.outcome == SERVED]
    assert len(bad) == len(ODD_ANSWERS) and len(good) == 2
    for o in bad:
        assert o.reason == keys.INVALID_API_ANSWER and o.image_id is None and o.complete
        assert "image id" in (o.error or "")
    assert {tuple(k.split("/")[:2]) for k in world.keys("dead-letter")} == {(keys.INVALID_API_ANSWER,
                                                                            keys.UNKNOWN_ID)}
    served_ids = {k.split("/")[1].rsplit("-", 1)[0] for k in world.keys("serving")}
    assert {i.rsplit(":", 1)[1] for i in served_ids} == {md5(images[k]) for k in good}
    world.check(out)
    healed = world.heal()  # redriven with the API answering right: their records exist, DUPLICATE heals
    assert {o.outcome for o in healed.values()} == {SERVED}
    world.check(healed)


# --- 8. API keys ----------------------------------------------------------------------------------------

def _stub_with_key(world: World, key: str) -> ApiStub:
    stub = ApiStub(world.tmp / f"catalog-{hashlib.md5(key.encode()).hexdigest()}.sqlite", key).start()
    world.ssm.put_parameter(Name=f"/api/url-{STAGE}", Value=stub.url, Type="String", Overwrite=True)
    return stub


def test_a_short_key_echoed_by_the_api_is_redacted_without_mangling_names(
        served_world: World, capsys: Capsys, monkeypatch: Patch) -> None:
    world = served_world
    stub = _stub_with_key(world, "k3y")
    try:
        stub.fail(400, times=99, body={"message": "API key k3y is not enabled for this stage"})
        world.put("cam/k3ybox.jpg", jpeg(80))
        monkeypatch.setenv("API_KEY", "k3y")
        r = run_cli(capsys, monkeypatch, "ingest", f"s3://{BUCKETS['ingestion']}/", "--stage", STAGE,
                    "--json", "--yes")
        assert r.code == 1
        [item] = [o for o in json_lines(r.out) if "outcome" in o]
        assert item["outcome"] == DEAD_LETTERED and item["reason"] == keys.API_ERROR
        assert item["error"] == "API key *** is not enabled for this stage"
        assert "k3ybox.jpg" in r.out  # an innocent name that holds the key's letters is left as it is
        assert " k3y " not in r.out + r.err
        [(key, meta)] = dead_letters(world).items()
        assert key == "API_ERROR/UNKNOWN_ID/k3ybox.jpg" and " k3y " not in meta["error"]
    finally:
        stub.stop()


def test_a_key_with_a_trailing_newline_is_sent_without_it(
        served_world: World, capsys: Capsys, monkeypatch: Patch) -> None:
    world = served_world
    world.put_many((f"cam/IMG {i}.jpg", jpeg(90 + i)) for i in range(2))
    monkeypatch.setenv("API_KEY", world.stub.api_key + "\n")
    r = run_cli(capsys, monkeypatch, "ingest", f"s3://{BUCKETS['ingestion']}/", "--stage", STAGE,
                "--json", "--yes")
    assert r.code == 0, r.err
    assert {o["outcome"] for o in json_lines(r.out) if "outcome" in o} == {SERVED}
    world.check()


def test_a_key_that_cannot_be_sent_is_refused_once_before_the_first_image(
        served_world: World, capsys: Capsys, monkeypatch: Patch) -> None:
    world = served_world
    world.put_many((f"cam/IMG {i}.jpg", jpeg(100 + i)) for i in range(3))
    ingest = ["ingest", f"s3://{BUCKETS['ingestion']}/", "--stage", STAGE]
    bad = "ключ-0123456789abcdef"
    r = subprocess.run([sys.executable, "-m", "animl_ingest_cli", *ingest], capture_output=True, text=True,
                       cwd=REPO, timeout=120, env={**os.environ, "API_KEY": bad})
    assert r.returncode == 2, r.stderr
    assert "API key (env API_KEY) cannot be sent" in one_error_line(r.stderr) and bad not in r.stderr
    for other in ("abc\ndef-0123456789", "tab\there-0123456789", "del\x7f-0123456789"):
        monkeypatch.setenv("API_KEY", other)
        r2 = run_cli(capsys, monkeypatch, *ingest)
        assert r2.code == 2 and "cannot be sent" in one_error_line(r2.err)
        assert all(piece not in r2.out + r2.err for piece in other.split())
    assert world.stub.requests == [] and world.keys("dead-letter") == []
    assert len(world.keys("ingestion")) == 3  # untouched: a rerun with the right key serves them


def test_every_key_is_registered_whatever_its_length() -> None:
    from animl_ingest_cli import redact

    for key in ("q", "zz", "k9!"):
        redact.register(key)
        assert redact.redact(f"x-api-key: {key}") == "x-api-key: ***"
        assert redact.redact(f"a{key}b.jpg") == f"a{key}b.jpg"


# --- 6. the local stage: malformed parameters, escaping bucket names, a full disk ---------------------

def run_local(local: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "animl_ingest_cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300, env={**os.environ, "ANIML_LOCAL_DIR": str(local)})


MALFORMED = [
    ("{not json", "not valid JSON (line 1"),
    ("[]", "must be a JSON object"),
    ('{"/images/serving-bucket-local": "animl-x"}', "'/images/serving-bucket-local' must be"),
    ('{"/images/serving-bucket-local": {"value": 3}}', "'/images/serving-bucket-local' must be"),
    ('{"/images/serving-bucket-local": {}}', "'/images/serving-bucket-local' must be"),
    ('{"/images/serving-bucket-local": {"value": "x", "modified": "yesterday"}}', "must be"),
    ('{"/images/dead-letter-bucket-local": {"value": "/tmp/x"}}', "not a bucket name"),
    ('{"/images/serving-bucket-local": {"value": "../../x"}}', "not a bucket name"),
]


def test_malformed_local_parameters_are_one_clear_line(
        tmp_path: Path, capsys: Capsys, monkeypatch: Patch) -> None:
    local = tmp_path / "deep" / "animl-local"
    local.mkdir(parents=True)
    monkeypatch.setenv("ANIML_LOCAL_DIR", str(local))
    photo = tmp_path / "in" / "a.jpg"
    photo.parent.mkdir()
    photo.write_bytes(jpeg(1))
    for content, says in MALFORMED:
        (local / "parameters.json").write_text(content)
        r = run_cli(capsys, monkeypatch, "ingest", str(photo))
        assert r.code == 2 and says in one_error_line(r.err) and "parameters" in r.err, (content, r.err)
    r3 = run_local(local, "ingest", str(photo))  # the last one, installed
    assert r3.returncode == 2 and "not a bucket name" in one_error_line(r3.stderr)
    outside = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                     if local not in p.parents and p != local)
    assert outside == ["deep", "in", "in/a.jpg"]  # nothing written outside ANIML_LOCAL_DIR
    r = run_cli(capsys, monkeypatch, "ingest", "s3://../../etc/")  # nor read from outside it
    assert r.code == 2 and "not a bucket name" in one_error_line(r.err)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (root only): ANIML_LOCAL_DIR on a disk that fills up."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_items_it_hits_summarises_them_and_a_rerun_serves_them(tmp_path: Path,
                                                                                     tiny_disk: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    originals = {}
    for i in range(12):
        data = jpeg(200 + i, size=(320, 240))
        (photos / f"IMG {i}.jpg").write_bytes(data)
        originals[f"IMG {i}.jpg"] = md5(data)
    local = tiny_disk / "animl-local"
    filler = tiny_disk / "filler"
    free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 300 * 1024))  # room for the catalog and a few images
    r = run_local(local, "ingest", str(photos), "--json")
    assert "Traceback" not in r.stderr and "unexpected" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr
    items = [o for o in json_lines(r.stdout) if "outcome" in o]
    summary = next(o["summary"] for o in json_lines(r.stdout) if "summary" in o)
    assert len(items) == 12 and summary["total"] == 12  # every file reported, the run summarised
    failed = [o for o in items if o["outcome"] == FAILED]
    assert failed and all("no space left on device" in o["error"].lower() for o in failed), items
    assert {o["outcome"] for o in items} <= {SERVED, FAILED}  # nothing dead-lettered for a full disk
    print(f"full disk: {len(failed)} of {len(items)} failed, {len(items) - len(failed)} served")  # the figure
    filler.unlink()
    again = run_local(local, "ingest", str(photos), "--json")
    assert again.returncode == 0, again.stderr
    assert {o["outcome"] for o in json_lines(again.stdout) if "outcome" in o} == {SERVED}
    from animl_ingest_cli.api_local import LocalApi
    from tests.reliability.invariants import LocalView, check

    views = {k: LocalView(local, f"animl-images-{k}-local") for k in ("ingestion", "serving", "dead-letter",
                                                                     "parkinglot")}
    catalog = LocalApi(local / "catalog.sqlite")
    try:
        # the sources are files (never deleted): each image is served, and never dead-lettered too
        report = check(views, originals, catalog, final=False)
        assert all(places == ["served"] for places in report.places.values()), report.places
    finally:
        catalog.close()
