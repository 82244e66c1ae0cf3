"""CloudFront invalidation: asked for once per reference, waited on until Completed, bounded."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from animl_ingest_cli.context import open_stage
from animl_ingest_cli.errors import InputError, StoreError, WaitTimeout
from animl_ingest_cli.ops import cloudfront
from tests.runbook.helpers import make_world


def test_invalidates_every_path_and_reports_completed(aws_mock: None) -> None:
    world = make_world("dev")
    inv = cloudfront.invalidate(open_stage("dev"), world["distribution"], reference="r1")
    assert inv.completed and inv.paths == ("/*",)
    got = world["cf"].get_invalidation(DistributionId=world["distribution"], Id=inv.id)["Invalidation"]
    assert got["InvalidationBatch"]["Paths"]["Items"] == ["/*"]
    assert got["InvalidationBatch"]["CallerReference"] == "r1"


def test_an_unknown_distribution_is_cloudfronts_error(aws_mock: None) -> None:
    with pytest.raises(StoreError) as exc:
        cloudfront.invalidate(open_stage("dev"), "E0NOSUCHDIST", reference="r")
    assert exc.value.code == "NoSuchDistribution"


@pytest.mark.parametrize("bad", ["d111111abcdef8.cloudfront.net", "arn:aws:cloudfront::1:distribution/E2",
                                 "", "e2lowercase"])
def test_a_domain_or_arn_is_not_a_distribution_id(bad: str) -> None:
    with pytest.raises(InputError, match="distribution's ID"):
        cloudfront.check_distribution_id(bad)


def stubbed(statuses: list[str]):
    """A real CloudFront client whose answers are CloudFront's documented shapes: created InProgress,
    then `statuses` for each GetInvalidation."""
    client = boto3.client("cloudfront")
    stub = Stubber(client)
    batch = {"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": "r"}
    inv = {"Id": "I2EXAMPLE", "Status": "InProgress", "CreateTime": "2025-01-01T00:00:00Z",
           "InvalidationBatch": batch}
    stub.add_response("create_invalidation", {"Location": "https://x", "Invalidation": inv},
                      {"DistributionId": "E2EXAMPLE", "InvalidationBatch": batch})
    for status in statuses:
        stub.add_response("get_invalidation", {"Invalidation": {**inv, "Status": status}},
                          {"DistributionId": "E2EXAMPLE", "Id": "I2EXAMPLE"})
    stub.activate()
    return open_stage("dev", client_factory=lambda service: client), stub


def test_waits_until_completed() -> None:
    ctx, stub = stubbed(["InProgress", "Completed"])
    sleeps: list[float] = []
    seen: list[str] = []
    inv = cloudfront.invalidate(ctx, "E2EXAMPLE", reference="r", interval=5, sleep=sleeps.append,
                                on_wait=lambda i: seen.append(i.status))
    assert inv.status == "Completed" and sleeps == [5, 5] and seen == ["InProgress", "InProgress"]
    stub.assert_no_pending_responses()


def test_gives_up_after_the_timeout() -> None:
    ctx, _ = stubbed(["InProgress"] * 5)
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    with pytest.raises(WaitTimeout, match="I2EXAMPLE of E2EXAMPLE is still InProgress after 30 s"):
        cloudfront.invalidate(ctx, "E2EXAMPLE", reference="r", timeout=30, interval=10, sleep=sleep,
                              clock=lambda: now[0])
