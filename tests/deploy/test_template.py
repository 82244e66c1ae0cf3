"""deploy/template.yaml: cfn-lint clean, and the shape the issue asks for, resolved per stage and mode."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from animl_ingest_cli.batchjob import teardown
from animl_ingest_cli.config import BUCKET_KINDS, REGION, Names
from tests.deploy.checks import failed_queue, function_name
from tests.deploy.policy import (
    TEARDOWN_FUNCTION,
    TEMPLATE,
    Resolver,
    dockerfile_cmd,
    dockerfile_stages,
    load_template,
    role_policy,
    template_handler,
    the_function,
)

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
    permissions = [p for p in of_type(resources, "AWS::Lambda::Permission").values()
                   if p["Properties"]["Principal"] == "s3.amazonaws.com"]
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
    # No Node stack alongside: the zips go to this stack's job queue and job definition.
    expected[names.batch_queue_param] = \
        f"arn:aws:batch:{REGION}:123456789012:job-queue/animl-ingest-py-{stage}-zip"
    expected[names.batch_job_param] = \
        f"arn:aws:batch:{REGION}:123456789012:job-definition/animl-ingest-py-{stage}-batch-job"
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


# --- the batch teardown function and the bulk-upload job ---------------------------------------------

def test_the_teardown_function_runs_the_teardown_handler(template: dict[str, Any]) -> None:
    import importlib
    import inspect

    handler = template_handler(template, TEARDOWN_FUNCTION)
    assert handler == "animl_ingest_cli.batchjob.teardown.handler"
    module, _, attr = handler.rpartition(".")
    assert len(inspect.signature(getattr(importlib.import_module(module), attr)).parameters) == 2
    _, function = the_function(template, TEARDOWN_FUNCTION)
    assert function["Properties"]["ImageUri"] == the_function(template)[1]["Properties"]["ImageUri"]
    assert function["Metadata"]["DockerBuildTarget"] == "function"  # one image, two commands


@pytest.mark.parametrize("stage", STAGES)
def test_the_teardown_function_is_named_and_configured(template: dict[str, Any], stage: str) -> None:
    _, resources = resolved(template, stage, "existing")
    props = resources[TEARDOWN_FUNCTION]["Properties"]
    assert props["FunctionName"] == f"animl-ingest-py-{stage}-teardown"
    env = props["Environment"]["Variables"]
    assert env["STAGE"] == stage
    assert env["API_KEY"] == f"{{{{resolve:secretsmanager:{Names(stage).api_secret}:SecretString:apikey}}}}"
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] >= 1
    # stopBatch invokes IngestDelete-<stage>: the name can be taken over once the Node one is gone
    r = Resolver(template, {"Stage": stage, "TeardownFunctionName": f"IngestDelete-{stage}"})
    assert r.value(template["Resources"][TEARDOWN_FUNCTION]["Properties"]["FunctionName"]) == \
        f"IngestDelete-{stage}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stage", STAGES)
def test_the_alarm_topic_and_the_hourly_schedule_invoke_it(template: dict[str, Any], stage: str,
                                                           mode: str) -> None:
    r, resources = resolved(template, stage, mode)
    function = f"arn:aws:lambda:{REGION}:123456789012:function:animl-ingest-py-{stage}-teardown"
    topic = f"arn:aws:sns:{REGION}:123456789012:{Names(stage).batch_delete_topic}"
    topics = [t["Properties"]["TopicName"] for t in of_type(resources, "AWS::SNS::Topic").values()]
    assert topics == ([Names(stage).batch_delete_topic] if mode == "create" else [])
    [sub] = of_type(resources, "AWS::SNS::Subscription").values()
    assert sub["Properties"] == {"Protocol": "lambda", "Endpoint": function, "TopicArn": topic}
    [rule] = of_type(resources, "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    assert rule["Properties"]["State"] == "ENABLED"
    assert [t["Arn"] for t in rule["Properties"]["Targets"]] == [function]
    grants = {(p["Properties"]["Principal"], p["Properties"]["SourceArn"])
              for p in of_type(resources, "AWS::Lambda::Permission").values()
              if p["Properties"]["FunctionName"] == function}
    assert grants == {("sns.amazonaws.com", topic),
                      ("events.amazonaws.com", r._fn_GetAtt(["TeardownSchedule", "Arn"]))}


def test_standby_leaves_the_teardown_to_the_node_function(template: dict[str, Any]) -> None:
    r = Resolver(template, {"Stage": "dev", "Teardown": "standby"})
    present = {k for k in template["Resources"] if r.exists(k)}
    assert "TeardownSubscription" not in present and "TeardownTopicInvokePermission" not in present
    assert r.value(template["Resources"]["TeardownSchedule"]["Properties"]["State"]) == "DISABLED"


def dockerfile_command(stage: str) -> list[str]:
    lines = dockerfile_stages()[stage]
    [entry] = [json.loads(x[len("ENTRYPOINT "):]) for x in lines if x.startswith("ENTRYPOINT ")]
    return [*entry, *dockerfile_cmd(stage)]


@pytest.mark.parametrize("stage", STAGES)
def test_the_job_definition(template: dict[str, Any], stage: str) -> None:
    _, resources = resolved(template, stage, "existing")
    [job] = of_type(resources, "AWS::Batch::JobDefinition").values()
    props = job["Properties"]
    assert props["JobDefinitionName"] == f"animl-ingest-py-{stage}-batch-job"
    assert props["PlatformCapabilities"] == ["FARGATE"] and props["Type"] == "container"
    # The Node job had no time limit. Every attempt together stays under the teardown sweep's 24 h.
    assert int(props["Timeout"]["AttemptDurationSeconds"]) >= 3600
    limit = int(template["Parameters"]["JobTimeout"]["MaxValue"]) * props["RetryStrategy"]["Attempts"]
    assert limit < teardown.SWEEP_AGE.total_seconds()
    container = props["ContainerProperties"]
    # The image's entry point plus the definition's command is `animl-ingest batch run`.
    assert dockerfile_command("job") == ["animl-ingest", "batch", "run"]
    assert container["Command"] == dockerfile_cmd("job")
    import typer.main

    from animl_ingest_cli.cli import app

    group: Any = typer.main.get_command(app)
    for word in container["Command"]:  # the command exists in the CLI the image installs
        group = group.commands[word]
    assert group.callback is not None
    assert container["Image"].endswith(f"/animl-ingest-py:job-{stage}")
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["STAGE"] == stage and "TASK" not in env and "API_KEY" not in env  # TASK: per submission
    [secret] = container["Secrets"]
    assert secret["Name"] == "API_KEY"
    assert secret["ValueFrom"] == (f"arn:aws:secretsmanager:{REGION}:123456789012:secret:"
                                   f"{Names(stage).api_secret}:apikey::")
    assert container["JobRoleArn"].endswith(":role/ZipJobRole")
    assert container["ExecutionRoleArn"].endswith(":role/ZipJobExecutionRole")
    starter = role_policy(template, {"Stage": stage}, role_id="ZipJobExecutionRole")
    assert starter.allows("secretsmanager:GetSecretValue",
                          f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{Names(stage).api_secret}-Ab12Cd")
    assert not starter.allows("s3:GetObject", f"arn:aws:s3:::{Names(stage).default_bucket('ingestion')}/k")


@pytest.mark.parametrize("stage", STAGES)
def test_create_mode_has_its_own_job_queue_on_fargate(template: dict[str, Any], stage: str) -> None:
    _, existing = resolved(template, stage, "existing")
    assert not of_type(existing, "AWS::Batch::JobQueue")
    assert not of_type(existing, "AWS::Batch::ComputeEnvironment")
    _, created = resolved(template, stage, "create")
    [queue] = of_type(created, "AWS::Batch::JobQueue").values()
    [env] = of_type(created, "AWS::Batch::ComputeEnvironment").values()
    assert queue["Properties"]["JobQueueName"] == f"animl-ingest-py-{stage}-zip"
    assert env["Properties"]["ComputeResources"]["Type"] == "FARGATE"
    assert queue["Properties"]["ComputeEnvironmentOrder"][0]["ComputeEnvironment"].endswith(
        f":compute-environment/{env['Properties']['ComputeEnvironmentName']}")
    assert "JobNetworkWithCreate" in template["Rules"]  # subnets are required with create


@pytest.mark.parametrize("stage", STAGES)
def test_the_ingest_function_may_hand_zips_to_either_job(template: dict[str, Any], stage: str) -> None:
    """Cutting zips over (or back) is a change of /images/batch-job-<stage>, no redeploy."""
    role = role_policy(template, {"Stage": stage})
    jobs = f"arn:aws:batch:{REGION}:123456789012:job-definition"
    assert role.allows("batch:SubmitJob", f"{jobs}/animl-ingest-{stage}-batch-job:4")  # the Node job
    assert role.allows("batch:SubmitJob", f"{jobs}/animl-ingest-py-{stage}-batch-job")
    assert role.allows("batch:SubmitJob", f"{jobs}/animl-ingest-py-{stage}-batch-job:2")
    other = "prod" if stage == "dev" else "dev"
    assert not role.allows("batch:SubmitJob", f"{jobs}/animl-ingest-py-{other}-batch-job:2")
