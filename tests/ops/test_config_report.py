"""`config`: every resolved name and where it came from; secrets never shown."""

from __future__ import annotations

import boto3
import pytest

from animl_ingest_cli.context import open_stage
from animl_ingest_cli.ops.config_report import resolve


def by_name(settings) -> dict:
    return {s.name: s for s in settings}


def test_aws_stage_defaults_ssm_overrides_and_env(aws_mock: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/images/serving-bucket-dev", Value="custom-serving", Type="String")
    ssm.put_parameter(Name="/api/url-dev", Value="https://api.example/graphql", Type="String")
    ssm.put_parameter(Name="/images/maintenance-mode-dev", Value="true", Type="String")
    ctx = open_stage("dev")
    ctx.client("ssm")  # made first: the endpoint below is only to be shown
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("API_KEY", "very-secret-key-123")
    s = by_name(resolve(ctx, given_stage="dev"))
    assert s["ingestion-bucket"].value == "animl-images-ingestion-dev"
    assert s["ingestion-bucket"].source == "default"
    assert (s["serving-bucket"].value, s["serving-bucket"].source) == ("custom-serving", "ssm")
    assert s["serving-bucket"].where == "/images/serving-bucket-dev"
    assert (s["api-url"].value, s["api-url"].source) == ("https://api.example/graphql", "ssm")
    assert (s["maintenance-mode"].value, s["batch-queue"].source) == ("on", "missing")
    assert (s["endpoint"].value, s["endpoint"].source) == ("http://127.0.0.1:1", "env")
    assert (s["api-key"].source, s["api-key"].where) == ("env", "API_KEY")
    assert (s["stage"].value, s["stage"].source) == ("dev", "option")
    assert s["region"].value == "us-west-2"
    assert all("very-secret-key-123" not in str(x.to_dict()) for x in s.values())


def test_aws_stage_api_key_from_the_secret(aws_mock: None) -> None:
    s = by_name(resolve(open_stage("prod")))
    assert s["api-key"].source == "secret" and "api-key-prod" in (s["api-key"].where or "")
    assert s["maintenance-mode"].value == "off (parameter missing)"


def test_local_stage_shows_folders(tmp_path) -> None:
    ctx = open_stage("local")
    ctx.params.put("/images/parkinglot-bucket-local", "my-parking")
    s = by_name(resolve(ctx))
    assert s["ingestion-bucket"].value == str(ctx.local_root / "buckets" / "animl-images-ingestion-local")
    assert s["parkinglot-bucket"].value.endswith("/buckets/my-parking")
    assert s["parkinglot-bucket"].source == "local"
    assert s["local-dir"].source == "env" and s["state-dir"].source == "env"
    assert s["audit-log"].value.endswith("audit.jsonl")
    assert "region" not in s  # no AWS on the local stage
