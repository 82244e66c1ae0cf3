"""Ctrl-C as an operator presses it: during the work, during a wait, and twice (or five times) in a
row. Always exit 130 with a message that says what state is left, never death by SIGINT, and a rerun
finishes the work."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from tests.awsfixtures import bucket, make_buckets
from tests.cli.test_progress import many_images
from tests.cli.test_unpark import start_unpark, summary_of, wait_for_copies
from tests.conftest import subprocess_env
from tests.ops.helpers import installed_cli, keys, make_queues, seed

PARK, INGEST = bucket("parkinglot"), bucket("ingestion")


def start(args: list[str], tmp_path: Path, env: dict[str, str] | None = None,
          name: str = "run") -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    proc = subprocess.Popen([*installed_cli(), *args], stdout=out.open("wb"), stderr=err.open("wb"),
                            env=subprocess_env(env), stdin=subprocess.DEVNULL,
                            # Ctrl-C as a terminal sends it, even where this test runs with SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return proc, out, err


def wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            pytest.fail(f"ended (exit {proc.returncode}) before {text!r}: {path.read_text()}")
        time.sleep(0.02)
    pytest.fail(f"no {text!r} in {path.read_text()}")


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"ended (exit {proc.returncode}) before {n} lines")
        time.sleep(0.01)
    pytest.fail("no progress")


def burst(proc: subprocess.Popen[bytes], times: int, gap: float = 0.01) -> None:
    for _ in range(times):
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)


@pytest.mark.parametrize("presses", [2, 5])
def test_ingest_ctrl_c_pressed_again_and_again_exits_130_and_a_rerun_finishes(tmp_path: Path,
                                                                            presses: int) -> None:
    folder = many_images(tmp_path / "cards", 40)
    env = {"ANIML_LOCAL_DIR": str(tmp_path / "animl-local")}
    proc, out, err = start(["ingest", str(folder), "--json", "--concurrency", "4"], tmp_path, env)
    wait_for_lines(out, 3, proc)
    burst(proc, presses)
    code = proc.wait(120)
    assert code == 130, (code, err.read_text())  # -2 would be death by SIGINT
    text = err.read_text()
    assert "interrupted: " in text and "Traceback" not in text and "Exception ignored" not in text
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    summary = lines[-1]["summary"]  # the summary was written: the state was saved
    assert summary["interrupted"] is True and summary["total"] == len(lines) - 1 < 40
    rerun, out2, err2 = start(["ingest", str(folder), "--json"], tmp_path, env, name="rerun")
    assert rerun.wait(180) == 0, err2.read_text()
    again = json.loads(out2.read_text().splitlines()[-1])["summary"]
    assert again["outcomes"]["served"] == 40 and again["outcomes"]["dead-lettered"] == 0
    served = list((tmp_path / "animl-local" / "buckets" / "animl-images-serving-local").rglob("*.*"))
    assert len(served) == 3 * 40


def test_unpark_ctrl_c_twice_exits_130_with_the_journal_saved(moto_server: str, tmp_path: Path) -> None:
    s3 = make_buckets()
    seed(PARK, [f"cam/{i:04d}.jpg" for i in range(150)])
    parked = keys(s3, PARK)
    proc, out, err = start_unpark(tmp_path, "--concurrency", "4")
    wait_for_copies(proc, 30)
    burst(proc, 3)
    assert proc.wait(60) == 130, err.read_text()
    assert "interrupted: unpark on dev" in err.read_text() and "Traceback" not in err.read_text()
    assert summary_of(out)["interrupted"] is True
    left, there = keys(s3, PARK), keys(s3, INGEST)
    assert set(left) | set(there) == set(parked) and not set(left) & set(there)
    rerun, out, err = start_unpark(tmp_path)
    assert rerun.wait(120) == 0, err.read_text()
    assert keys(s3, PARK) == {} and keys(s3, INGEST) == parked


def test_ctrl_c_in_maintenance_on_wait_says_the_flag_is_on(moto_server: str, tmp_path: Path) -> None:
    proc, out, err = start(["maintenance", "on", "--stage", "dev"], tmp_path,
                           {"ANIML_MAINTENANCE_WAIT_SECONDS": "60"})
    wait_for(err, "waiting 60.0 s", proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    last = err.read_text().strip().splitlines()[-1]
    assert last.startswith("interrupted: maintenance is ON on dev"), err.read_text()
    value = boto3.client("ssm").get_parameter(Name="/images/maintenance-mode-dev")["Parameter"]["Value"]
    assert value == "true"


def test_ctrl_c_between_drain_polls_exits_130_with_a_message(moto_server: str, tmp_path: Path) -> None:
    sqs = boto3.client("sqs")
    urls = make_queues(sqs)
    sqs.send_message(QueueUrl=urls["taskQueue-dev"], MessageBody="work")
    proc, out, err = start(["queues", "drain", "--stage", "dev", "--interval", "60"], tmp_path)
    wait_for(err, "poll 1:", proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert err.read_text().strip().splitlines()[-1].startswith(
        "interrupted: queues drain on dev stopped after 1 poll(s)"), err.read_text()


def test_ctrl_c_in_unparks_wait_after_maintenance_off(moto_server: str, tmp_path: Path) -> None:
    make_buckets()
    seed(PARK, ["a.jpg"])
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/images/maintenance-mode-dev", Value="false", Type="String")
    proc, out, err = start(["unpark", "--stage", "dev"], tmp_path, {"ANIML_MAINTENANCE_WAIT_SECONDS": "60"})
    wait_for(err, "waiting", proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert err.read_text().strip().splitlines()[-1].startswith("interrupted"), err.read_text()
    assert keys(boto3.client("s3"), PARK) == {"a.jpg": keys(boto3.client("s3"), PARK)["a.jpg"]}


@pytest.mark.parametrize("hung", ["api", "aws"])
def test_ctrl_c_while_a_pre_flight_read_hangs_exits_130_at_once(moto_server: str, tmp_path: Path,
                                                                api_stub, hung: str) -> None:  # noqa: ANN001
    """What a run reads first is asked side by side, in threads of their own (the stage's parameters,
    the bucket and source checks, the dry run's API probe). A Ctrl-C while one hangs (animl-api, or
    every AWS request) ends the command at once, with 130, instead of waiting out the hung request
    (15 s for the API, up to minutes for botocore's retries of a 60 s read): they only read, and
    nothing is left half-done."""
    from tests.reliability.faults import FaultProxy, KillSwitch

    make_buckets()
    boto3.client("ssm").put_parameter(Name="/api/url-dev", Value=api_stub.url, Type="String")
    env = {"API_KEY": api_stub.api_key}
    proxy = FaultProxy(moto_server, KillSwitch())
    try:
        if hung == "api":
            api_stub.hang(60)
        else:
            proxy.jitter = lambda: 30.0  # every AWS request held 30 s
            env["AWS_ENDPOINT_URL"] = proxy.url
        proc, out, err = start(["ingest", f"s3://{INGEST}/", "--stage", "dev", "--dry-run", "--json"],
                               tmp_path, env)
        deadline = time.monotonic() + 60
        while not (api_stub.requests if hung == "api" else proxy.switch.seen) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, err.read_text()
        time.sleep(0.2)  # well inside the hung request
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        try:
            code = proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("still running 5 s after Ctrl-C: it waited for the hung request")
        assert code == 130 and time.monotonic() - sent < 5, err.read_text()
        assert "Traceback" not in err.read_text() and "interrupted" in err.read_text()
    finally:
        proxy.jitter = None
        proxy.close()
