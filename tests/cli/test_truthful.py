"""Issue 18: a command that looked at the wrong place says so. Each case was a false "all is well"
(exit 0, `on`, `drained`, `total 0`, a whole bucket dead-lettered as Forbidden); each is now a clear
one-line error or warning with its own exit code. Against moto's server where AWS is involved, the
animl-api stand-in on loopback, and the installed command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3

from tests.awsfixtures import bucket, make_buckets
from tests.conftest import EXAMPLES, subprocess_env
from tests.ops.helpers import dead_letter, installed_cli, keys, make_queues, seed

STAGE = "dev"


def cli(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*installed_cli(), *args], capture_output=True, text=True, input=stdin,
                          env=subprocess_env(env), timeout=180)


def one_error_line(r: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, r.stderr
    for w in words:
        assert w in errors[0], (w, errors[0])
    return errors[0]


def api_stage(api_stub, stage: str = STAGE) -> None:  # noqa: ANN001
    make_buckets(stage)
    boto3.client("ssm").put_parameter(Name=f"/api/url-{stage}", Value=api_stub.url, Type="String")


def upload_examples(prefix: str = "cam/") -> list[str]:
    s3 = boto3.client("s3")
    names = []
    for p in sorted(EXAMPLES.iterdir()):
        s3.put_object(Bucket=bucket("ingestion"), Key=prefix + p.name, Body=p.read_bytes())
        names.append(prefix + p.name)
    return names


# --- 1. an empty --stage ---------------------------------------------------------------------------
def test_empty_stage_is_a_usage_error_and_writes_nothing(tmp_path: Path) -> None:
    local = tmp_path / "animl-local"
    cases: list[tuple[list[str], dict[str, str]]] = [
        (["maintenance", "on", "--stage", ""], {}), (["maintenance", "on"], {"ANIML_STAGE": ""}),
        (["ingest", str(EXAMPLES), "--stage", " "], {})]
    for args, env in cases:
        r = cli(*args, env={"ANIML_LOCAL_DIR": str(local), **env})
        one_error_line(r, 2, "empty")
        assert r.stdout == ""
    assert not local.exists()  # the local parameters file was not written


def test_every_human_result_names_its_stage(moto_server: str) -> None:
    env = {"ANIML_MAINTENANCE_WAIT_SECONDS": "0"}
    assert cli("maintenance", "status", "--stage", STAGE).stdout == "off on dev\n"
    assert cli("maintenance", "on", "--stage", STAGE, env=env).stdout == "maintenance on (dev)\n"
    assert cli("maintenance", "status", "--stage", STAGE).stdout == "on on dev\n"
    make_queues(boto3.client("sqs"))
    r = cli("queues", "drain", "--stage", STAGE, "--interval", "0", "--stable", "1")
    assert r.returncode == 0 and r.stdout.startswith("drained on dev ("), r.stderr
    make_buckets()
    r = cli("unpark", "--stage", STAGE, "--force")
    assert r.returncode == 0 and r.stdout.startswith("moved 0, already there 0, failed 0 on dev"), r.stderr


# --- 2. drain with no Animl queue ------------------------------------------------------------------
def test_drain_with_no_queue_at_all_is_refused_unless_allowed(moto_server: str) -> None:
    r = cli("queues", "drain", "--stage", STAGE, "--interval", "0", "--stable", "1")
    one_error_line(r, 3, "no Animl queue found on dev", "--allow-empty")
    assert "drained" not in r.stdout
    r = cli("queues", "drain", "--stage", STAGE, "--interval", "0", "--stable", "1", "--allow-empty")
    assert r.returncode == 0 and r.stdout.startswith("drained on dev"), r.stderr


def test_the_runbooks_drain_step_refuses_no_queues_too(moto_server: str, monkeypatch) -> None:  # noqa: ANN001
    from tests.runbook.helpers import maintenance_value, make_world

    monkeypatch.setenv("ANIML_MAINTENANCE_WAIT_SECONDS", "0")
    world = make_world("prod")
    for url in world["queues"].values():
        world["sqs"].delete_queue(QueueUrl=url)
    r = subprocess.run([*installed_cli(), "runbook", "prod-deploy", "--yes", "--drain-interval", "0",
                        "--drain-stable", "1"], input="y\ny\ny\n", capture_output=True, text=True,
                       env=subprocess_env(), timeout=180)
    assert r.returncode == 3, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step 4 drain-queues failed: no Animl queue found on prod"), last
    assert maintenance_value("prod") == "true"  # left on, as after any failed step


# --- 4. an s3:// source the stage cannot see ---------------------------------------------------------
def test_s3_source_missing_on_the_local_stage_hints_at_stage(tmp_path: Path) -> None:
    r = cli("ingest", "s3://animl-images-ingestion-dev/", env={"ANIML_LOCAL_DIR": str(tmp_path / "l")})
    one_error_line(r, 2, "no bucket animl-images-ingestion-dev on the local stage", "--stage dev")
    assert "total" not in r.stdout


def test_s3_source_bucket_missing_on_aws(moto_server: str, api_stub) -> None:  # noqa: ANN001
    api_stage(api_stub)
    r = cli("ingest", "s3://no-such-bucket-here/", "--stage", STAGE, env={"API_KEY": api_stub.api_key})
    one_error_line(r, 2, "no bucket no-such-bucket-here on dev")


# --- 5. pre-flight ---------------------------------------------------------------------------------------
def test_missing_api_url_is_found_once_before_the_first_image(moto_server: str) -> None:
    make_buckets()
    names = upload_examples()
    r = cli("ingest", f"s3://{bucket('ingestion')}/", "--stage", STAGE, env={"API_KEY": "k" * 20})
    one_error_line(r, 2, "no API URL", "/api/url-dev")
    s3 = boto3.client("s3")
    assert sorted(keys(s3, bucket("ingestion"))) == names and keys(s3, bucket("dead-letter")) == {}


def test_missing_api_key_is_found_once(moto_server: str, api_stub) -> None:  # noqa: ANN001
    api_stage(api_stub)
    upload_examples()
    r = cli("ingest", f"s3://{bucket('ingestion')}/", "--stage", STAGE)
    one_error_line(r, 2, "no API key", "api-key-dev")
    assert keys(boto3.client("s3"), bucket("dead-letter")) == {}


def test_a_wrong_key_stops_at_the_first_image_and_dead_letters_nothing(moto_server: str,
                                                                       api_stub) -> None:  # noqa: ANN001
    api_stage(api_stub)
    names = upload_examples()
    r = cli("ingest", f"s3://{bucket('ingestion')}/", "--stage", STAGE, "--concurrency", "4",
            env={"API_KEY": "the-wrong-key-1234"})
    one_error_line(r, 2, "refused the API key", "HTTP 403", "nothing was dead-lettered")
    s3 = boto3.client("s3")
    assert keys(s3, bucket("dead-letter")) == {}  # not one `Forbidden/...` dead letter
    assert sorted(keys(s3, bucket("ingestion"))) == names  # every image still where it was
    assert "the-wrong-key-1234" not in r.stdout + r.stderr


def test_dry_run_and_config_check_ask_the_api_first(moto_server: str, api_stub) -> None:  # noqa: ANN001
    api_stage(api_stub)
    upload_examples()
    bad = {"API_KEY": "the-wrong-key-1234"}
    r = cli("ingest", f"s3://{bucket('ingestion')}/", "--stage", STAGE, "--dry-run", env=bad)
    one_error_line(r, 2, "refused the API key")
    r = cli("config", "--stage", STAGE, "--check", "--json", env=bad)
    one_error_line(r, 2, "refused the API key")
    checks = {c["check"]: c for c in map(json.loads, r.stdout.splitlines()) if "check" in c}
    assert checks["serving-bucket"]["ok"] is True and checks["api"]["ok"] is False
    good = {"API_KEY": api_stub.api_key}
    r = cli("config", "--stage", STAGE, "--check", "--json", env=good)
    assert r.returncode == 0, r.stderr
    checks = {c["check"]: c for c in map(json.loads, r.stdout.splitlines()) if "check" in c}
    assert all(c["ok"] for c in checks.values()) and "answers and accepts the key" in checks["api"]["detail"]
    r = cli("ingest", f"s3://{bucket('ingestion')}/", "--stage", STAGE, "--dry-run", env=good)
    assert r.returncode == 0, r.stderr
    assert not api_stub.calls("createImage")  # the checks create nothing


def test_missing_bucket_is_an_infrastructure_error_exit_5(moto_server: str, api_stub) -> None:  # noqa: ANN001
    api_stage(api_stub)
    upload_examples()
    boto3.client("s3").delete_bucket(Bucket=bucket("serving"))
    env = {"API_KEY": api_stub.api_key}
    r = cli("ingest", f"s3://{bucket('ingestion')}/", "--stage", STAGE, env=env)
    one_error_line(r, 5, "serving bucket animl-images-serving-dev does not exist on dev")
    assert keys(boto3.client("s3"), bucket("dead-letter")) == {}
    r = cli("config", "--stage", STAGE, "--check", env=env)
    one_error_line(r, 5, "does not exist")


def test_unreachable_endpoint_is_exit_5(tmp_path: Path) -> None:
    r = cli("maintenance", "status", "--stage", STAGE, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                                                            "AWS_MAX_ATTEMPTS": "1"})
    one_error_line(r, 5)


def test_unwritable_local_folder_is_found_once(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = cli("ingest", str(EXAMPLES), env={"ANIML_LOCAL_DIR": str(blocker / "animl-local")})
    one_error_line(r, 2, "cannot be written", "ANIML_LOCAL_DIR")
    assert "served" not in r.stdout


# --- 6. a mistyped redrive folder, an empty ingest folder --------------------------------------------
def test_mistyped_redrive_folder_lists_the_folders(moto_server: str) -> None:
    from animl_ingest_cli.context import open_stage

    make_buckets()
    store = open_stage(STAGE).store("dead-letter")
    for i in range(3):
        dead_letter(store, "Unknown Serial Number", f"p:{i}", f"{i}.jpg", b"x", original_bucket=None,
                    original_key=None)
    dead_letter(store, "DUPLICATE_IMAGE", "p:9", "9.jpg", b"y", original_bucket=None, original_key=None)
    r = cli("deadletter", "redrive", "--stage", STAGE, "--error", "Unknown Serial")
    line = one_error_line(r, 2, "no dead-letter folder 'Unknown Serial' on dev")
    assert "'Unknown Serial Number' (3)" in line and "'DUPLICATE_IMAGE' (1)" in line
    assert len(keys(boto3.client("s3"), bucket("dead-letter"))) == 4


def test_an_empty_folder_warns_no_images_found(tmp_path: Path) -> None:
    empty = tmp_path / "card"
    empty.mkdir()
    r = cli("ingest", str(empty), env={"ANIML_LOCAL_DIR": str(tmp_path / "l")})
    assert r.returncode == 0 and f"warning: no images found in {empty}" in r.stderr


# --- 7. the small untruths ------------------------------------------------------------------------------
def test_dry_run_says_would_be_lists_every_object_on_stdout(tmp_path: Path) -> None:
    folder = tmp_path / "card"
    folder.mkdir()
    examples = sorted(EXAMPLES.iterdir())
    for i in range(60):
        (folder / f"{i:03}.jpg").write_bytes(examples[i % 4].read_bytes() + b"\0" * (i + 1))
    r = cli("ingest", str(folder), "--dry-run", env={"ANIML_LOCAL_DIR": str(tmp_path / "l")})
    assert r.returncode == 0, r.stderr
    plan = [line for line in r.stdout.splitlines() if line.startswith("would be ")]
    assert len(plan) == 60 and all(line.startswith("would be served: ") for line in plan)
    assert "would served" not in r.stdout + r.stderr and "would be served" not in r.stderr
    assert "│ would be served │    60 │" in r.stdout and "│ served " not in r.stdout


def test_requests_per_object_counts_moved_objects_and_never_says_none(moto_server: str) -> None:
    make_buckets()
    seed(bucket("parkinglot"), [f"cam/{i}.jpg" for i in range(10)])
    s3 = boto3.client("s3")
    for i in range(5):  # already in the ingestion bucket: not moved, nothing to copy
        s3.put_object(Bucket=bucket("ingestion"), Key=f"cam/{i}.jpg", Body=b"different")
    r = cli("unpark", "--stage", STAGE, "--json")
    summary = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert summary["moved"] == 5 and summary["failed"] == 5
    assert summary["requests_per_object"] == round(summary["requests_total"] / 5, 3)
    r = cli("unpark", "--stage", "local")
    assert r.returncode == 0 and "None" not in r.stdout and "requests per object" not in r.stdout


def test_unpark_dry_run_while_maintenance_is_on_shows_the_plan_with_a_warning(moto_server: str) -> None:
    make_buckets()
    seed(bucket("parkinglot"), ["a.jpg", "b.jpg"])
    boto3.client("ssm").put_parameter(Name="/images/maintenance-mode-dev", Value="true", Type="String")
    r = cli("unpark", "--stage", STAGE, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(" -> s3://animl-images-ingestion-dev/") == 2
    assert "warning: maintenance is on for dev" in r.stderr
    assert "maintenance off --stage dev" in r.stderr  # the hint names the stage
    r = cli("unpark", "--stage", STAGE)
    one_error_line(r, 3, "maintenance is on for dev", "--stage dev")


def test_odd_maintenance_value_is_warned(moto_server: str) -> None:
    boto3.client("ssm").put_parameter(Name="/images/maintenance-mode-dev", Value="yes", Type="String")
    r = cli("maintenance", "status", "--stage", STAGE)
    assert r.stdout == "off on dev\n" and "holds 'yes', neither true nor false" in r.stderr


def test_audit_log_write_failure_is_warned(tmp_path: Path) -> None:
    state = tmp_path / "state-is-a-file"
    state.write_text("x")
    r = cli("maintenance", "on", "--no-wait", env={"ANIML_LOCAL_DIR": str(tmp_path / "l"),
                                                   "ANIML_STATE_DIR": str(state)})
    assert r.returncode == 0 and r.stdout == "maintenance on (local)\n"
    assert "audit log" in r.stderr and "could not be written" in r.stderr


# --- 8. the summary names files; a rerun says what was already served --------------------------------------
def test_summary_names_skipped_and_dead_lettered_files_then_a_count(tmp_path: Path) -> None:
    folder = tmp_path / "card"
    folder.mkdir()
    for i in range(14):
        (folder / f"notes{i:02}.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    r = cli("ingest", str(folder), env={"ANIML_LOCAL_DIR": str(tmp_path / "l")})
    assert r.returncode == 1, r.stderr
    err = r.stderr
    assert "skipped (14):" in err and f"{folder / 'notes00.txt'}: unsupported file type" in err
    assert "... and 4 more (--json lists every one)" in err
    assert "dead-lettered (1):" in err and f"{folder / 'broken.jpg'}: " in err


def test_a_rerun_says_served_and_already_served(tmp_path: Path) -> None:
    env = {"ANIML_LOCAL_DIR": str(tmp_path / "l")}
    folder = tmp_path / "card"
    folder.mkdir()
    examples = sorted(EXAMPLES.iterdir())
    for p in examples[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    assert cli("ingest", str(folder), env=env).returncode == 0
    for p in examples[2:]:
        (folder / p.name).write_bytes(p.read_bytes())
    r = cli("ingest", str(folder), env=env)
    assert r.returncode == 0, r.stderr
    assert "served 2, already served 2" in r.stderr
    assert "│ already served │     2 │" in r.stdout
    r = cli("ingest", str(folder), "--json", env=env)
    summary = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert summary["outcomes"]["served"] == 4 and summary["already_served"] == 4


def test_exit_codes_are_documented_in_the_readme() -> None:
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert f"\n| {code} |" in table, code
