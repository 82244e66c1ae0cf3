"""A stage as the runbook meets it (buckets, queues, a CloudFront distribution, a parked image, an
animl-api checkout whose export writes a backup), and an operator that answers from a script."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from animl_ingest_cli.ops.moves import MoveOutcome
from animl_ingest_cli.ops.queues import Snapshot
from tests.awsfixtures import bucket, make_buckets

needs_npm = pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None,
                               reason="npm and node are needed to run the fake animl-api export script")

# What the fake export does: the real script's folder layout (backups/animl-<stage>/<UTC minute>/),
# one mongoexport per collection, and the profile it was given, for the test to check.
EXPORT_JS = """
const fs = require('fs'); const path = require('path'); const { execFileSync } = require('child_process');
const stage = process.env.STAGE;
if (process.env.FAKE_EXPORT_FAIL) { console.error('cannot reach the database'); process.exit(1); }
const iso = new Date().toISOString();
// luxon's yyyy-LL-dd'T'HHmm'Z', as the real script names it
const dt = `${iso.slice(0, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}Z`;
const out = path.join(__dirname, 'backups', `animl-${stage}`, dt);
fs.mkdirSync(out, { recursive: true });
if (process.env.FAKE_EXPORT_EMPTY) { process.exit(0); }
for (const c of ['images', 'cameras']) {
  execFileSync('mongoexport', ['--collection', c, '--out', path.join(out, `animl-${stage}--${c}.json`)]);
}
fs.writeFileSync(path.join(out, 'profile.txt'), process.env.AWS_PROFILE || '');
console.log(`backed up animl-${stage} to ${out}`);
"""
MONGOEXPORT = """#!/bin/sh
# a stand-in for MongoDB's mongoexport: writes one JSON document to --out
while [ $# -gt 0 ]; do case "$1" in --out) out="$2"; shift;; --collection) c="$2"; shift;; esac; shift; done
printf '{"_id":"%s-1"}\\n' "$c" > "$out"
"""


def fake_api_checkout(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An animl-api checkout whose export scripts run the fake export; `mongoexport` on PATH."""
    api = root / "animl-api"
    api.mkdir()
    (api / "export.js").write_text(EXPORT_JS)
    (api / "package.json").write_text(json.dumps({"name": "animl-serverless", "scripts": {
        "export-db": "node ./export.js", "export-db-dev": "STAGE=dev npm run export-db",
        "export-db-prod": "STAGE=prod npm run export-db"}}))
    tools = root / "bin"
    tools.mkdir()
    (tools / "mongoexport").write_text(MONGOEXPORT)
    (tools / "mongoexport").chmod(0o755 | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    return api


def backups(api: Path, stage: str) -> list[Path]:
    root = api / "backups" / f"animl-{stage}"
    return sorted(p for p in root.iterdir()) if root.is_dir() else []


def make_world(stage: str) -> dict[str, Any]:
    """Buckets, the shared queues, the frontend's distribution and one parked image, in whatever AWS
    the environment points at (moto in-process or moto's server)."""
    s3 = make_buckets(stage)
    sqs = boto3.client("sqs")
    queues = {n: sqs.create_queue(QueueName=f"{n}-{stage}")["QueueUrl"]
              for n in ("inferenceQueue", "inferenceDLQ", "taskQueue", "taskDLQ")}
    cf = boto3.client("cloudfront")
    dist = cf.create_distribution(DistributionConfig={
        "CallerReference": f"frontend-{stage}", "Comment": "animl-frontend", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "site", "DomainName": "frontend.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "site", "ViewerProtocolPolicy": "allow-all"}})
    s3.put_object(Bucket=bucket("parkinglot", stage), Key="parked during deploy.JPG", Body=b"jpeg bytes")
    return {"s3": s3, "sqs": sqs, "queues": queues, "cf": cf,
            "distribution": dist["Distribution"]["Id"]}


def invalidations(world: dict[str, Any]) -> int:
    """How many invalidations the world's distribution has had."""
    listed = world["cf"].list_invalidations(DistributionId=world["distribution"])["InvalidationList"]
    return listed.get("Quantity", 0)


def maintenance_value(stage: str) -> str | None:
    """The raw maintenance parameter, None when it does not exist."""
    found = boto3.client("ssm").get_parameters(Names=[f"/images/maintenance-mode-{stage}"])["Parameters"]
    return found[0]["Value"] if found else None


def audit_entries(command: str | None = "runbook prod-deploy") -> list[dict[str, Any]]:
    path = Path(os.environ["ANIML_STATE_DIR"]) / "audit.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in rows if command is None or r["command"] == command]


@dataclass
class ScriptedOperator:
    """Answers questions from a list (True/False for y/n, a string for the stage name); records what
    it was shown and asked. An answer may be an exception to raise instead."""

    answers: list[Any]
    shown: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    polls: int = 0
    on_poll_hook: Callable[[Snapshot], None] | None = None
    on_outcome_hook: Callable[[MoveOutcome], None] | None = None

    def _next(self, question: str) -> Any:
        self.asked.append(question)
        if not self.answers:
            raise AssertionError(f"unexpected question: {question}")
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def show(self, text: str) -> None:
        self.shown.append(text)

    def confirm(self, question: str) -> bool:
        answer = self._next(question)
        assert isinstance(answer, bool), f"{question!r} wants y/n, the script has {answer!r}"
        return answer

    def confirm_stage(self, action: str) -> None:
        from animl_ingest_cli.errors import RefusedError

        answer = self._next(f"type the stage name: {action}")
        assert isinstance(answer, str), f"{action!r} wants the stage name, the script has {answer!r}"
        if answer != "prod":
            raise RefusedError(f"not confirmed: expected 'prod', got {answer!r}")

    def on_poll(self, snap: Snapshot, streak: int, stable: int) -> None:
        self.polls += 1
        if self.on_poll_hook:
            self.on_poll_hook(snap)

    def on_outcome(self, outcome: MoveOutcome) -> None:
        self.shown.append(f"{outcome.key}: {outcome.status}")
        if self.on_outcome_hook:
            self.on_outcome_hook(outcome)
