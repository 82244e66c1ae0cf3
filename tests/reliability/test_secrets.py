"""The API key never appears: not on stdout or stderr, in --json, in the audit log, in logging (even
botocore's DEBUG records, which print every response body), nor in a traceback. Every command
family runs with the key set, including failing paths (403, an unreachable API, an unexpected
exception), and every output is searched for it."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from animl_ingest_cli.config import state_dir
from animl_ingest_cli.redact import HIDDEN
from tests.conftest import REPO
from tests.reliability.conftest import BUCKETS, STAGE, World, jpeg

WRONG_KEY = "WRONG-apikey-5ecr3t-0000-1111"


def secrets_of(world: World) -> list[str]:
    return [world.stub.api_key, WRONG_KEY]


def assert_clean(text: str, world: World, where: str) -> None:
    """Neither key, nor any 12-character piece of one, is in `text`."""
    for secret in secrets_of(world):
        pieces = {secret[i:i + 12] for i in range(len(secret) - 11)}
        found = [p for p in pieces if p in text]
        assert not found, f"the API key (or a piece of it: {found[0]!r}) appears in {where}"


def audit_text() -> str:
    path = state_dir() / "audit.jsonl"
    return path.read_text() if path.exists() else ""


# --- the installed command, every family ----------------------------------------------------------------

def test_every_command_family_keeps_the_key_out_of_its_output(served_world: World, tmp_path: Path) -> None:
    world = served_world
    world.put_many((f"cam/IMG {i}+é.jpg", jpeg(400 + i)) for i in range(2))
    world.client("secretsmanager").create_secret(Name=f"api-key-{STAGE}",
                                                 SecretString=json.dumps({"apikey": world.stub.api_key}))
    # A wrong key no longer dead-letters anything from the CLI (it stops at the first image, issue
    # 18): the redrive below gets a dead letter of its own, as a Forbidden run of the Lambda leaves it.
    world.client("s3").put_object(Bucket=BUCKETS["dead-letter"], Key="Forbidden/UNKNOWN_ID/IMG 9+é.jpg",
                                  Body=jpeg(409), Metadata={
                                      "original-bucket": BUCKETS["ingestion"],
                                      "original-key": "cam/IMG%209%2B%C3%A9.jpg", "error": "Forbidden"})
    key_env = {"API_KEY": world.stub.api_key, "ANIML_API_KEY": world.stub.api_key}
    no_key = {"API_KEY": "", "ANIML_API_KEY": ""}  # read from Secrets Manager instead
    ingest = ["ingest", f"s3://{BUCKETS['ingestion']}/", "--stage", STAGE]
    runs = [
        (["ingest", str(tmp_path), "--stage", STAGE, "--dry-run", "--json"], key_env),
        ([*ingest, "--json"], {**key_env, "API_KEY": WRONG_KEY, "ANIML_DEBUG": "1"}),  # 403: stops
        (["deadletter", "list", "--stage", STAGE, "--json"], key_env),
        (["deadletter", "redrive", "--error", "Forbidden", "--stage", STAGE, "--json"], key_env),
        ([*ingest], no_key),  # the key from Secrets Manager, the table output
        (["inspect", str(tmp_path), "--json"], key_env),
        (["maintenance", "on", "--stage", STAGE, "--no-wait", "--json"], key_env),
        (["maintenance", "off", "--stage", STAGE, "--no-wait"], key_env),
        (["queues", "list", "--stage", STAGE, "--json"], key_env),
        (["unpark", "--stage", STAGE, "--json"], key_env),
        (["config", "--stage", STAGE, "--json"], no_key),
        (["runbook", "status"], key_env),
    ]
    (tmp_path / "a.jpg").write_bytes(jpeg(410))
    for args, env in runs:
        r = subprocess.run([sys.executable, "-m", "animl_ingest_cli", *args], capture_output=True, text=True,
                           env={**os.environ, **env, "ANIML_MAINTENANCE_WAIT_SECONDS": "0"}, cwd=REPO,
                           timeout=120)
        assert "Traceback" not in r.stderr, (args, r.stderr)
        assert_clean(r.stdout + r.stderr, world, f"the output of {' '.join(args)}")
    assert world.keys("serving"), "the Secrets Manager run served the redriven images"
    assert "deadletter redrive" in audit_text() and "maintenance" in audit_text()
    assert_clean(audit_text(), world, "the audit log")


# --- in-process: logging at DEBUG and tracebacks ------------------------------------------------------------

def run_main(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    from animl_ingest_cli.cli import main

    monkeypatch.setattr(sys, "argv", ["animl-ingest", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(SystemExit):
        main()
    out = capsys.readouterr()
    return out.out + out.err


def test_debug_logging_and_tracebacks_never_show_the_key(world: World, capsys: pytest.CaptureFixture[str],
                                                         caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_KEY")
    world.client("secretsmanager").create_secret(Name=f"api-key-{STAGE}",
                                                 SecretString=json.dumps({"apikey": world.stub.api_key}))
    world.put("cam/a.jpg", jpeg(420))
    caplog.set_level(logging.DEBUG)  # every logger, botocore's response bodies included
    ingest = ["ingest", f"s3://{BUCKETS['ingestion']}/", "--stage", STAGE]
    text = run_main([*ingest, "--json"], capsys, monkeypatch)
    assert world.keys("serving"), text
    assert "botocore.parsers" in caplog.text and HIDDEN in caplog.text  # DEBUG records were captured
    assert_clean(caplog.text + text, world, "DEBUG logging")

    # an unexpected exception that carries the key, with and without ANIML_DEBUG's traceback
    import animl_ingest_cli.ingest as ingest_module

    def explode(*_: object, **__: object) -> None:
        raise RuntimeError(f"boom with {world.stub.api_key} inside")

    monkeypatch.setattr(ingest_module.Ingestor, "build_md", explode)
    world.put("cam/b.jpg", jpeg(421))
    for debug in ("", "1"):
        monkeypatch.setenv("ANIML_DEBUG", debug)
        text = run_main(ingest, capsys, monkeypatch)
        assert "RuntimeError: boom with ***" in text
        assert ("Traceback" in text) == bool(debug)
        assert_clean(text + caplog.text, world, "a traceback")


def test_typer_never_prints_locals() -> None:
    """typer's pretty exceptions print every frame's local variables (the key among them)."""
    from animl_ingest_cli.cli import app

    assert app.pretty_exceptions_enable is False
