"""deploy/template.yaml: cfn-lint clean, and the shape the issue asks for, resolved per stage and mode."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from animl_ingest_cli.config import BUCKET_KINDS, REGION, Names
from tests.deploy.checks import failed_queue, function_name
from tests.deploy.policy import TEMPLATE, Resolver, load_template, role_policy, the_function

MODES = ("existing", "create")
STAGES = ("dev", "prod")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resolved(template: dict[str, Any], stage: str, mode: str) -> tuple[Resolver, dict[str, Any]]:
    """The resources that exist for (stage, mode), their properties resolved."""
    r = Resolver(template, {"Stage": stage, "StageResources": mode})
    out = {k: {**res, "Properties": r.value(res.get("Properties", {}))}
           for k, res in template["Resources"].items() if r.exists(k)}
    return r, out


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def test_cfn_lint_is_clean() -> None:
    matches = lint_file(TEMPLATE, ManualArgs(regions=[REGION]))
    assert not matches, "\n".join(str(m) for m in matches)


def test_cfn_lint_runs_on_it(tmp_path: Path) -> None:
    """The lint test above can fail: a broken copy of the template is reported."""
    broken = TEMPLATE.read_text(encoding="utf-8").replace("ReservedConcurrentExecutions: 100",
                                                          "ReservedConcurrentExecutions: many")
    assert broken != TEMPLATE.read_text(encoding="utf-8")
    path = tmp_path / "template.yaml"
    path.write_text(broken, encoding="utf-8")
    assert lint_file(path, ManualArgs(regions=[REGION]))


@pytest.mark.parametrize("stage", STAGES)
def test_function(template: dict[str, Any], stage: str) -> None:
    _, resources = resolved(template, stage, "existing")
    logical_id, _ = the_function(template)
    props = resources[logical_id]["Properties"]
    assert props["FunctionName"] == function_name(stage)
    assert props["PackageType"] == "Image"
    assert props["ReservedConcurrentExecutions"] == 100  # as the Node stack
    env = props["Environment"]["Variables"]
    assert env["STAGE"] == stage
    assert env["API_KEY"] == f"{{{{resolve:secretsmanager:{Names(stage).api_secret}:SecretString:apikey}}}}"
    # Failed invocations are kept (retried first), never dropped silently.
    invoke = props["EventInvokeConfig"]
    target = invoke["DestinationConfig"]["OnFailure"]
    assert target["Type"] == "SQS"
    assert target["Destination"].endswith(f":{failed_queue(stage)}")
    assert invoke["MaximumRetryAttempts"] >= 1
    queue = of_type(resources, "AWS::SQS::Queue")
    assert [q["Properties"]["QueueName"] for q in queue.values()] == [failed_queue(stage)]
    assert all(q.get("DeletionPolicy") == "Retain" for q in queue.values())


def test_timeout_covers_more_than_the_node_budget(template: dict[str, Any]) -> None:
    """The Node function had 20 s around one 15 s API attempt; this one retries the API, so its default
    must leave room for several attempts plus the copies."""
    timeout = template["Parameters"]["Timeout"]
    assert timeout["Default"] >= 3 * 15 + 15
    assert timeout["MaxValue"] <= 900


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stage", STAGES)
def test_trigger_and_invoke_permission(template: dict[str, Any], stage: str, mode: str) -> None:
    _, resources = resolved(template, stage, mode)
    alias = f"arn:aws:lambda:{REGION}:123456789012:function:{function_name(stage)}:live"
    ingestion = Names(stage).default_bucket("ingestion")
    permissions = list(of_type(resources, "AWS::Lambda::Permission").values())
    assert len(permissions) == 1
    p = permissions[0]["Properties"]
    assert (p["FunctionName"], p["Principal"], p["Action"]) == (alias, "s3.amazonaws.com",
                                                                "lambda:InvokeFunction")
    assert p["SourceArn"] == f"arn:aws:s3:::{ingestion}" and p["SourceAccount"] == "123456789012"
    buckets = {r["Properties"]["BucketName"]: r for r in of_type(resources, "AWS::S3::Bucket").values()}
    if mode == "existing":
        assert not buckets  # the Node stack owns them; the trigger is switched by hand
        return
    notifications = buckets[ingestion]["Properties"]["NotificationConfiguration"]
    assert notifications == {"LambdaConfigurations": [{"Event": "s3:ObjectCreated:*", "Function": alias}]}
    others = [b for name, b in buckets.items() if name != ingestion]
    assert not any("NotificationConfiguration" in b["Properties"] for b in others)


@pytest.mark.parametrize("stage", STAGES)
def test_buckets_are_private_and_kept(template: dict[str, Any], stage: str) -> None:
    _, resources = resolved(template, stage, "create")
    buckets = {r["Properties"]["BucketName"]: r for r in of_type(resources, "AWS::S3::Bucket").values()}
    assert set(buckets) == {Names(stage).default_bucket(k) for k in BUCKET_KINDS}
    for name, bucket in buckets.items():
        block = bucket["Properties"]["PublicAccessBlockConfiguration"]
        assert block == {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
                         "RestrictPublicBuckets": True}, name
        assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain", name


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stage", STAGES)
def test_parameters_the_stack_owns(template: dict[str, Any], stage: str, mode: str) -> None:
    names = Names(stage)
    _, resources = resolved(template, stage, mode)
    params = {r["Properties"]["Name"]: r["Properties"]["Value"]
              for r in of_type(resources, "AWS::SSM::Parameter").values()}
    if mode == "existing":
        assert params == {}
        return
    assert names.maintenance_param not in params  # operators own it: a stack update must never reset it
    expected = {names.bucket_param(k): names.default_bucket(k) for k in BUCKET_KINDS}
    expected[names.batch_queue_param] = \
        f"arn:aws:batch:{REGION}:123456789012:job-queue/animl-batch-ingestion-{stage}"
    expected[names.batch_job_param] = \
        f"arn:aws:batch:{REGION}:123456789012:job-definition/animl-ingest-{stage}-batch-job"
    assert params == expected


def test_no_resource_of_any_kind_names_the_maintenance_flag() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    writers = [line for line in text.splitlines() if "maintenance-mode" in line
               and not line.strip().startswith("- !Sub arn:${AWS::Partition}:ssm:")]
    assert not writers, writers


def test_batch_names_can_be_overridden(template: dict[str, Any]) -> None:
    r = Resolver(template, {"Stage": "dev", "StageResources": "create", "BatchJobQueue": "q-custom",
                            "BatchJobDefinition": "jd-custom"})
    params = {r.value(res["Properties"]["Name"]): r.value(res["Properties"]["Value"])
              for res in template["Resources"].values() if res["Type"] == "AWS::SSM::Parameter"}
    assert params["/images/batch-queue-dev"].endswith(":job-queue/q-custom")
    assert params["/images/batch-job-dev"].endswith(":job-definition/jd-custom")
    role = role_policy(template, {"Stage": "dev", "BatchJobQueue": "q-custom",
                                  "BatchJobDefinition": "jd-custom"})
    assert role.allows("batch:SubmitJob", params["/images/batch-queue-dev"])
    assert role.allows("batch:SubmitJob", params["/images/batch-job-dev"] + ":3")
    assert not role.allows("batch:SubmitJob",
                           f"arn:aws:batch:{REGION}:123456789012:job-queue/animl-batch-ingestion-dev")


def test_role_is_inline_and_literal(template: dict[str, Any]) -> None:
    """No managed policies (AWSLambdaExecute would grant s3:* reads everywhere) and no wildcard
    actions; `*` resources only where the action cannot be scoped (checked in test_permissions)."""
    role = role_policy(template, {"Stage": "dev"})
    for statement in role.statements:
        for action in statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]:
            assert not re.search(r"[*?]", action), action
    assert all(s["Effect"] == "Allow" for s in role.statements)
