"""The handler the deployment runs: named alike by the template and the Dockerfile, installed by the
Dockerfile's steps, and doing its job on synthetic S3 ObjectCreated events against moto.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from animl_ingest_cli.claims import PREFIX as CLAIMS
from animl_ingest_cli.config import BUCKET_KINDS, REGION, Names
from tests.conftest import CORPUS_IMAGES, needs_corpus
from tests.deploy.policy import (
    DOCKERFILE,
    REPO,
    dockerfile_handler,
    dockerfile_stages,
    load_template,
    template_handler,
)

STAGE = "dev"
NAMES = Names(STAGE)
IMAGE = "buckeyecam_x80_fox_resized.jpg"  # BuckEyeCam with EXIF serial and DateTimeOriginal


def handler_name() -> str:
    from_template, from_image = template_handler(load_template()), dockerfile_handler()
    assert from_template == from_image, (from_template, from_image)
    return from_template


def load_handler() -> Callable[[dict[str, Any], Any], Any]:
    module, _, attr = handler_name().rpartition(".")
    return getattr(importlib.import_module(module), attr)


class FakeContext:
    """What Lambda passes as `context` (the attributes a handler may read)."""

    function_name = f"animl-ingest-py-{STAGE}"
    function_version = "1"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}:live"
    memory_limit_in_mb = 1024
    aws_request_id = "6bc28136-bd0d-4b9b-9c2b-7c7b0f1e2d3a"
    log_group_name = f"/aws/lambda/{function_name}"
    log_stream_name = "2025/01/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def s3_event(bucket: str, key: str, body: bytes) -> dict[str, Any]:
    """An s3:ObjectCreated:Put notification as S3 sends it (the key URL-encoded, spaces as `+`)."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
        "eventTime": "2025-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.9"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "animl-ingest-py",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": len(body),
                       "eTag": hashlib.md5(body).hexdigest(), "sequencer": "0055AED6DCD90281E5"},
        },
    }]}


def keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
            if not o["Key"].startswith(CLAIMS)]  # the per-image claims (claims.py) are not images


def outcomes(result: Any) -> dict[str, int]:
    assert isinstance(result, dict), result
    return {k: v for k, v in result["outcomes"].items() if v}


@pytest.fixture
def stage_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGE", STAGE)


def make_buckets(s3: Any, kinds: tuple[str, ...] = BUCKET_KINDS) -> None:
    for kind in kinds:
        s3.create_bucket(Bucket=NAMES.default_bucket(kind),
                         CreateBucketConfiguration={"LocationConstraint": REGION})


# --- the name -----------------------------------------------------------------------------------

def test_template_and_dockerfile_name_one_handler_that_exists() -> None:
    assert handler_name() == "animl_ingest_cli.lambda_handler.handler"
    handler = load_handler()
    assert callable(handler)
    assert len(inspect.signature(handler).parameters) == 2  # (event, context)


# --- the image ----------------------------------------------------------------------------------

def dockerfile_copies(stage: str = "function") -> list[tuple[list[str], str]]:
    out = []
    for line in dockerfile_stages()[stage]:
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            assert not any(s.startswith("--") for s in sources), "COPY flags are not simulated"
            out.append((sources, dest))
    return out


def ignored_by_dockerignore(path: str) -> bool:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if p.strip() and not p.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatch(prefix, pattern.removeprefix("**/")) or fnmatch.fnmatch(prefix, pattern)
               for pattern in patterns for prefix in prefixes)


def test_the_job_image_installs_the_same_package() -> None:
    """The job target copies what the function target copies, and installs it as a command."""
    assert dockerfile_copies("job") == dockerfile_copies("function")
    job = dockerfile_stages()["job"]
    assert any(line.startswith("RUN pip install ") and "/tmp/src" in line for line in job)


@pytest.mark.slow
def test_the_dockerfile_steps_install_a_working_handler(tmp_path: Path) -> None:
    """The COPY lines bring everything pip needs, and the installed tree holds the handler and every
    module of the package (a subpackage missing from the build would break the function only in AWS)."""
    image = tmp_path / "image"
    for sources, dest in dockerfile_copies():
        for source in sources:
            assert (REPO / source).exists(), source
            assert not ignored_by_dockerignore(source), f".dockerignore drops {source}"
            target = image / dest.lstrip("/")
            if dest.endswith("/"):
                target = target / Path(source).name
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / source, target)
    run = re.search(r"^RUN pip install .*--target \"\$\{LAMBDA_TASK_ROOT\}\" (\S+)",
                    DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    assert run, "the Dockerfile installs the package into ${LAMBDA_TASK_ROOT} with pip"
    task_root = image / "var" / "task"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(task_root), str(image / run.group(1).lstrip("/"))],
                   check=True, capture_output=True, timeout=300)
    package = REPO / "animl_ingest_cli"
    wanted = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    installed = {p.relative_to(task_root / "animl_ingest_cli").as_posix()
                 for p in (task_root / "animl_ingest_cli").rglob("*.py")}
    assert wanted <= installed, sorted(wanted - installed)
    module, _, attr = handler_name().rpartition(".")
    probe = (f"import sys; sys.path.insert(0, {str(task_root)!r}); import {module} as m; "
             f"assert callable(m.{attr}); print(m.__file__)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(task_root))


# --- the function at work -----------------------------------------------------------------------

@needs_corpus
def test_an_image_is_served(aws_mock: None, stage_env: None, api_stub: Any,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", api_stub.api_key)
    s3 = boto3.client("s3", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    make_buckets(s3)
    ssm.put_parameter(Name=NAMES.api_url_param, Value=api_stub.url, Type="String")
    body = (CORPUS_IMAGES / IMAGE).read_bytes()
    key = "buckeye fox+1.jpg"
    ingestion = NAMES.default_bucket("ingestion")
    s3.put_object(Bucket=ingestion, Key=key, Body=body, ContentType="binary/octet-stream")

    result = load_handler()(s3_event(ingestion, key, body), FakeContext())

    assert outcomes(result) == {"served": 1}
    json.dumps(result)  # Lambda serialises what the handler returns
    assert keys(s3, ingestion) == []
    served = keys(s3, NAMES.default_bucket("serving"))
    assert len(served) == 3, served
    md5 = hashlib.md5(body).hexdigest()
    for key in served:  # <size>/<projectId>:<md5 of the bytes>-<size>.jpg
        assert re.fullmatch(rf"(original|medium|small)/[^/:]+:{md5}-\1\.jpg", key), key
        head = s3.head_object(Bucket=NAMES.default_bucket("serving"), Key=key)
        assert head["ContentType"] == "image/jpeg"
    original = next(k for k in served if k.startswith("original/"))
    assert s3.get_object(Bucket=NAMES.default_bucket("serving"), Key=original)["Body"].read() == body
    assert keys(s3, NAMES.default_bucket("dead-letter")) == []


def test_maintenance_parks_without_the_api(aws_mock: None, stage_env: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "unused-key")
    s3 = boto3.client("s3", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    make_buckets(s3)
    ssm.put_parameter(Name=NAMES.maintenance_param, Value="true", Type="String")
    ssm.put_parameter(Name=NAMES.api_url_param, Value="http://127.0.0.1:9/graphql", Type="String")
    ingestion = NAMES.default_bucket("ingestion")
    body = b"\xff\xd8\xff\xe0 not decoded while parked \xff\xd9"
    key = "batch-0f6b3a52-1c1e-4d7a-9a43-3b8e2f5c9d10/cam 1/IMG+0001 (2).JPG"
    s3.put_object(Bucket=ingestion, Key=key, Body=body, ContentType="image/jpeg")

    result = load_handler()(s3_event(ingestion, key, body), FakeContext())

    assert outcomes(result) == {"parked": 1}
    assert keys(s3, ingestion) == []
    parked = NAMES.default_bucket("parkinglot")
    assert keys(s3, parked) == [key]
    assert s3.get_object(Bucket=parked, Key=key)["Body"].read() == body


def test_an_object_that_cannot_be_placed_raises_and_stays(aws_mock: None, stage_env: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No parking lot to copy to: the invocation fails (so Lambda retries, then keeps the event on the
    failure queue) and the object is still in the ingestion bucket."""
    monkeypatch.setenv("API_KEY", "unused-key")
    s3 = boto3.client("s3", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    make_buckets(s3, ("ingestion", "serving", "dead-letter"))
    ssm.put_parameter(Name=NAMES.maintenance_param, Value="true", Type="String")
    ssm.put_parameter(Name=NAMES.api_url_param, Value="http://127.0.0.1:9/graphql", Type="String")
    ingestion = NAMES.default_bucket("ingestion")
    body = b"\xff\xd8\xff\xe0 jpeg \xff\xd9"
    s3.put_object(Bucket=ingestion, Key="cam.jpg", Body=body)
    handler = load_handler()

    with pytest.raises(Exception):  # noqa: B017 - any exception: Lambda only needs the invocation to fail
        handler(s3_event(ingestion, "cam.jpg", body), FakeContext())

    assert keys(s3, ingestion) == ["cam.jpg"]
