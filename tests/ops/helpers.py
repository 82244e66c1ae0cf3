"""Helpers for the operator-command tests: buckets, dead-letter objects, awkward keys, the CLI."""

from __future__ import annotations

import io
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from animl_ingest_cli.stores import Store
from tests.awsfixtures import STAGE

QUEUE_UUID = str(uuid.UUID(int=42))  # the bulk upload whose queues make_queues makes


def make_queues(sqs) -> dict[str, str]:
    """The stage's queues as Animl has them, plus others' queues that must not be listed."""
    urls = {}
    for name in ("inferenceDLQ-dev", "taskDLQ-dev", f"animl-ingest-dev-batch-{QUEUE_UUID}-dlq"):
        urls[name] = sqs.create_queue(QueueName=name)["QueueUrl"]
    for name, dlq in (("inferenceQueue-dev", "inferenceDLQ-dev"), ("taskQueue-dev", "taskDLQ-dev"),
                      (f"animl-ingest-dev-batch-{QUEUE_UUID}", f"animl-ingest-dev-batch-{QUEUE_UUID}-dlq")):
        attrs = sqs.get_queue_attributes(QueueUrl=urls[dlq], AttributeNames=["QueueArn"])["Attributes"]
        urls[name] = sqs.create_queue(QueueName=name, Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": attrs["QueueArn"],
                                         "maxReceiveCount": "3"})})["QueueUrl"]
    sqs.create_queue(QueueName="inferenceQueue-prod")
    sqs.create_queue(QueueName="someone-elses-queue")
    return urls


def make_job_queue(stage: str = STAGE) -> str:
    """An AWS Batch job queue named by `/images/batch-queue-<stage>`, as the zip jobs have; its ARN."""
    import boto3

    batch, iam = boto3.client("batch"), boto3.client("iam")
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = batch.create_compute_environment(computeEnvironmentName="unzip-env", type="UNMANAGED",
                                           state="ENABLED", serviceRole=role)
    queue = batch.create_job_queue(jobQueueName="unzip-queue", state="ENABLED", priority=1,
                                   computeEnvironmentOrder=[{
                                       "order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])
    boto3.client("ssm").put_parameter(Name=f"/images/batch-queue-{stage}", Value=queue["jobQueueArn"],
                                      Type="String")
    return str(queue["jobQueueArn"])


def seed(bucket_name: str, names: list[str]) -> None:
    """Many objects at once (body = the key), written into moto's backend directly: through the API
    they would take most of a test's time. moto serves them as any other object."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for k in names:
        backend.put_object(bucket_name, k, k.encode())


def keys(s3: Any, name: str, prefix: str = "") -> dict[str, str]:
    """Key -> ETag (unquoted) of every object in a bucket."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["ETag"].strip('"')
    return out


def awkward_keys(n: int) -> list[str]:
    """Keys like cameras and bulk uploads make: spaces, '+', unicode, percent signs, XML and URL
    specials, batch prefixes, long names. Valid for S3 and for the local stage's folders."""
    shapes = ["IMG {i}.JPG", "a+b {i}.jpg", "été/caméra {i}.jpeg", "100%25 {i}.png", "q?x=1&y=2 {i}.jpg",
              "hash#{i}.jpg", "<tag> & 'quote' \"{i}\".jpg", "batch-{u}/sub dir/deep/{i}.jpg",
              "emoji 📷 {i}.jpg", "tilde~{i} (1).JPG", "x" * 200 + "{i}.jpg", "semi;colon,{i}.jpg",
              "batch-{u}.zip-{i}", "   leading spaces {i}.jpg", "trailing space {i}.jpg "]
    u = str(uuid.UUID(int=7))
    return [shapes[i % len(shapes)].format(i=i, u=u) for i in range(n)]


def dead_letter(store: Store, error: str, image_id: str, file_name: str, data: bytes, *,
                original_bucket: str | None, original_key: str | None, batch: str | None = None) -> str:
    """Write a dead-letter object the way the ingest function does (metadata percent-encoded)."""
    key = f"{error}/{image_id}/{file_name}"
    md = {}
    if original_bucket is not None:
        md["original-bucket"] = quote(original_bucket, safe="")
    if original_key is not None:
        md["original-key"] = quote(original_key, safe="")
        md["error"] = quote(error, safe="")
        md["image-id"] = quote(image_id, safe="")
    if batch:
        md["batch-id"] = quote(batch, safe="")
    store.put(key, data, "image/jpeg", md)
    return key


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str,
            stdin: str = "") -> Result:
    """The CLI in-process through `main()` (exit codes and one-line errors as installed), so that
    in-process moto serves it."""
    from animl_ingest_cli.cli import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["animl-ingest", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def installed_cli() -> list[str]:
    """The installed `animl-ingest` of this venv, else the module."""
    exe = Path(sys.executable).with_name("animl-ingest")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "animl_ingest_cli"]
