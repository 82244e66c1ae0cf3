"""What each principal may touch (the spec), and the checks of the policies against the code.

Two principals: the function's role (template) and the operator (deploy/operator-policy.json). For
each, the actions come from the code (awscalls); the resources from docs/animl.md through config.Names:
which buckets the function reads, writes and deletes in, which parameters it reads, and so on.
Each check returns a list of problems, one line each, so a failing test says everything at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from animl_ingest_cli.config import BUCKET_KINDS, Names
from tests.deploy import awscalls
from tests.deploy.policy import (
    ACCOUNT,
    DISTRIBUTION,
    JOB_ROLE,
    REGION,
    REPO,
    TEARDOWN_FUNCTION,
    Policy,
    load_template,
    operator_policy,
    resource_types,
    role_policy,
)

BATCH_UUID = "batch-0f6b3a52-1c1e-4d7a-9a43-3b8e2f5c9d10"
READ_VERBS = ("Get", "Describe", "List", "Head")


def function_name(stage: str) -> str:
    return f"animl-ingest-py-{stage}"


def failed_queue(stage: str) -> str:
    return f"animl-ingest-{stage}-failed-dlq"


def queue_names(stage: str) -> list[str]:
    out = []
    for prefix in Names(stage).queue_prefixes:
        out += [f"{prefix}{BATCH_UUID[6:]}", f"{prefix}{BATCH_UUID[6:]}-dlq"] if prefix.endswith("-") \
            else [prefix]
    return out + [failed_queue(stage)]


def catalog(stage: str) -> dict[tuple[str, str], list[str]]:
    """Example ARNs of every stage resource, by (IAM prefix, resource type)."""
    names = Names(stage)
    job_def = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/animl-ingest-{stage}-batch-job"
    log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function_name(stage)}"
    return {
        ("secretsmanager", "Secret"): [
            f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{names.api_secret}-Ab12Cd"],
        ("sqs", "queue"): [f"arn:aws:sqs:{REGION}:{ACCOUNT}:{q}" for q in queue_names(stage)],
        ("cloudformation", "stack"): [
            f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{names.batch_stack_prefix}"
            f"{BATCH_UUID[6:]}/5a1e2b30-0000-11ef-9c6f-0a1b2c3d4e5f"],
        ("batch", "job-queue"): [
            f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/animl-batch-ingestion-{stage}"],
        ("batch", "job-definition"): [job_def],
        ("batch", "job-definition-revision"): [f"{job_def}:7"],
        ("cloudwatch", "alarm"): [
            f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{names.batch_alarm(BATCH_UUID)}"],
        ("cloudfront", "distribution"): [f"arn:aws:cloudfront::{ACCOUNT}:distribution/{DISTRIBUTION}"],
        ("logs", "log-group"): [f"{log_group}:*"],
        ("logs", "log-stream"): [f"{log_group}:log-stream:2025/01/01/[$LATEST]0123456789abcdef"],
    }


def foreign_catalog(stage: str) -> dict[tuple[str, str], list[str]]:
    """Resources no policy of `stage` may reach: the other stage's, and strangers'."""
    other = "prod" if stage == "dev" else "dev"
    out = catalog(other)
    out[("sqs", "queue")] += [f"arn:aws:sqs:{REGION}:{ACCOUNT}:someone-elses-queue"]
    out[("cloudfront", "distribution")] = [f"arn:aws:cloudfront::{ACCOUNT}:distribution/E9OTHER0DIST"]
    out[("secretsmanager", "Secret")] += [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-password"]
    # The stage's own long-lived stacks are never a batch stack to delete.
    out[("cloudformation", "stack")] += [
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{name}/5a1e2b30-0000-11ef-9c6f-0a1b2c3d4e5f"
        for name in (f"animl-ingest-{stage}", f"animl-ingest-py-{stage}", f"animl-api-{stage}")]
    out[("cloudwatch", "alarm")] += [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:someone-elses-alarm"]
    return out


def bucket_arn(bucket: str, object_level: bool) -> str:
    return f"arn:aws:s3:::{bucket}/batch-x/some key.jpg" if object_level else f"arn:aws:s3:::{bucket}"


def parameter_arn(name: str) -> str:
    return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name.lstrip('/')}"


@dataclass
class Scope:
    """One principal: its policy, the code it runs, and what docs/animl.md lets it touch."""

    name: str
    policy: Callable[[str], Policy]
    start_module: str | None  # None: every module of the package
    s3: dict[str, frozenset[str]]  # S3 action -> bucket kinds it is granted on
    params_read: Callable[[Names], list[str]]
    params_write: Callable[[Names], list[str]]
    granted_without_call: dict[str, str] = field(default_factory=dict)  # action -> why
    excluded_calls: dict[tuple[str, str], str] = field(default_factory=dict)  # (module, function) -> why
    # modules whose calls another principal makes (module -> is it excluded), and why
    excluded_modules: tuple[Callable[[str], bool], str] | None = None
    queues: Callable[[str], list[str]] | None = None  # the SQS queues it works on; None: all of the stage's

    def available(self, root: Path = REPO) -> bool:
        """Whether the code this principal runs is in the package (the job lands in its own time)."""
        if self.start_module is None:
            return True
        rel = Path(*self.start_module.split("."))
        return (root / rel.with_suffix(".py")).exists() or (root / rel / "__init__.py").exists()

    def derived(self, root: Path = REPO) -> dict[str, list[awscalls.Call]]:
        """Action -> calls, from the code this principal runs, minus the documented exclusions."""
        actions = awscalls.actions_for(root, self.start_module)
        skip = self.excluded_modules[0] if self.excluded_modules else (lambda module: False)
        out = {}
        for action, calls in actions.items():
            kept = [c for c in calls if (c.module, c.function) not in self.excluded_calls
                    and not skip(c.module)]
            if kept:
                out[action] = kept
        return out


ALL_KINDS = frozenset(BUCKET_KINDS)

BATCHJOB = "animl_ingest_cli.batchjob"
TEARDOWN_MODULES = (f"{BATCHJOB}.teardown", f"{BATCHJOB}.inflight")


def job_module(module: str) -> bool:
    """The bulk-upload job's own code: everything in batchjob/ but the teardown and what it reads."""
    return module.startswith(f"{BATCHJOB}.") and module not in TEARDOWN_MODULES

# DeleteStack of a per-batch stack: CloudFormation deletes the stack's resources with the caller's
# credentials (the stacks are created without a service role), so whoever tears a batch down needs these.
_BY_CLOUDFORMATION = "CloudFormation deletes the per-batch stack's {} with the caller's credentials"
DELETE_STACK_NEEDS = {
    "sqs:DeleteQueue": _BY_CLOUDFORMATION.format("queues"),
    "cloudwatch:DeleteAlarms": _BY_CLOUDFORMATION.format("alarm"),
    "lambda:GetEventSourceMapping": _BY_CLOUDFORMATION.format("event-source mapping"),
    "lambda:DeleteEventSourceMapping": _BY_CLOUDFORMATION.format("event-source mapping"),
}

# What every Lambda's role is granted for the runtime, not for any call of the code.
_LAMBDA_RUNTIME = dict.fromkeys(("logs:CreateLogStream", "logs:PutLogEvents"),
                                "the Lambda runtime writes the function's logs with its role")
_PARAMS_SSM_PUT = {("animl_ingest_cli.params", "SsmParams.put"):
                   "imported with params, but only operators write parameters (maintenance on/off)"}
_JOB_ELSEWHERE = "the bulk-upload job runs in AWS Batch with its job role (JOB scope); "

FUNCTION = Scope(
    name="function role",
    policy=lambda stage: role_policy(load_template(), {"Stage": stage}),
    start_module=awscalls.LAMBDA_MODULE,
    # docs/animl.md, Buckets: it reads the source (and checks serving/dead-letter/parking-lot keys
    # before writing), writes the three destinations, and deletes only from the ingestion bucket.
    s3={
        "s3:GetObject": ALL_KINDS,
        "s3:ListBucket": ALL_KINDS,
        "s3:PutObject": frozenset({"serving", "dead-letter", "parkinglot"}),
        "s3:DeleteObject": frozenset({"ingestion"}),
    },
    params_read=lambda n: [n.bucket_param(k) for k in BUCKET_KINDS]
    + [n.maintenance_param, n.batch_queue_param, n.batch_job_param, n.api_url_param],
    params_write=lambda n: [],
    granted_without_call={
        **_LAMBDA_RUNTIME,
        "sqs:SendMessage": "Lambda sends failed asynchronous events to the on-failure destination "
                           "with the function's role",
    },
    excluded_calls=_PARAMS_SSM_PUT,
    excluded_modules=(job_module, _JOB_ELSEWHERE + "the function reaches it only on the local stage "
                                                   "(Ingestor._local_batch)"),
)

OPERATOR = Scope(
    name="operator policy",
    policy=operator_policy,
    start_module=None,
    # Operators move objects between all four buckets (ingest s3://, unpark, dead-letter redrive).
    s3={
        "s3:GetObject": ALL_KINDS,
        "s3:PutObject": ALL_KINDS,
        "s3:DeleteObject": ALL_KINDS,
        "s3:AbortMultipartUpload": ALL_KINDS,
        "s3:ListBucket": ALL_KINDS,
    },
    params_read=lambda n: list(n.ssm_names().values()),
    params_write=lambda n: [n.maintenance_param],
    granted_without_call=DELETE_STACK_NEEDS,
    excluded_modules=(job_module, _JOB_ELSEWHERE + "operators run it on the local stage only"),
    excluded_calls=dict.fromkeys(
        [("animl_ingest_cli.batchjob.teardown", f) for f in ("_already_reported", "_mark_reported")],
        "only the teardown function's hourly sweep reports dead letters (with its own role)"),
)

def batch_queue_names(stage: str) -> list[str]:
    names = Names(stage)
    return [names.batch_queue(BATCH_UUID), names.batch_dlq(BATCH_UUID)]


TEARDOWN = Scope(
    name="teardown role",
    policy=lambda stage: role_policy(load_template(), {"Stage": stage}, TEARDOWN_FUNCTION),
    start_module=f"{BATCHJOB}.teardown",
    s3={},
    params_read=lambda n: [n.api_url_param],
    params_write=lambda n: [],
    granted_without_call={**_LAMBDA_RUNTIME, **DELETE_STACK_NEEDS},
    excluded_calls=_PARAMS_SSM_PUT,
    excluded_modules=(lambda module: module == "animl_ingest_cli.stores",
                      "imported with the stage context; the teardown opens no bucket"),
    queues=batch_queue_names,
)

# CreateStack makes a per-batch stack's resources (and deletes them on a rollback) with the caller's
# credentials: the job's role needs what CloudFormation calls for the queues, alarm and mapping.
_BY_CREATE = "CloudFormation makes the per-batch stack's {} with the job's credentials"
CREATE_STACK_NEEDS = {
    "sqs:CreateQueue": _BY_CREATE.format("queues"),
    "sqs:GetQueueAttributes": _BY_CREATE.format("queues"),
    "sqs:SetQueueAttributes": _BY_CREATE.format("queues"),
    "sqs:TagQueue": _BY_CREATE.format("queues (tagged with the batch)"),
    "cloudwatch:PutMetricAlarm": _BY_CREATE.format("alarm"),
    "cloudwatch:DescribeAlarms": _BY_CREATE.format("alarm"),
    "lambda:CreateEventSourceMapping": _BY_CREATE.format("event-source mapping"),
    **DELETE_STACK_NEEDS,
}

JOB = Scope(
    name="job role",
    policy=lambda stage: role_policy(load_template(), {"Stage": stage}, role_id=JOB_ROLE),
    start_module=f"{BATCHJOB}.job",
    # The zip and its entries live in the ingestion bucket; in maintenance the zip is parked.
    s3={
        "s3:GetObject": frozenset({"ingestion", "parkinglot"}),
        "s3:ListBucket": frozenset({"ingestion", "parkinglot"}),
        "s3:PutObject": frozenset({"ingestion", "parkinglot"}),
        "s3:AbortMultipartUpload": frozenset({"ingestion", "parkinglot"}),
        "s3:DeleteObject": frozenset({"ingestion"}),
    },
    params_read=lambda n: [n.bucket_param(k) for k in BUCKET_KINDS] + [n.maintenance_param,
                                                                       n.api_url_param],
    params_write=lambda n: [],
    granted_without_call=CREATE_STACK_NEEDS,
    excluded_calls=_PARAMS_SSM_PUT,
    queues=batch_queue_names,
)

SCOPES = (FUNCTION, OPERATOR, TEARDOWN, JOB)


def _is_read(action: str) -> bool:
    return action.partition(":")[2].startswith(READ_VERBS)


def required_resources(scope: Scope, stage: str, action: str) -> tuple[list[str], str | None]:
    """The resources `action` must be allowed on for `scope`, or why none can be named."""
    types = resource_types(action)
    if types is None:
        return [], f"{action} is not an IAM action (map its operation in awscalls.S3_ACTIONS)"
    if not types:
        return ["*"], None
    prefix = action.partition(":")[0]
    names = Names(stage)
    if prefix == "s3":
        kinds = scope.s3.get(action)
        if not kinds:
            return [], f"the contract gives {scope.name} no bucket for {action} (checks.py, {scope.name} s3)"
        object_level = "object" in types
        return [bucket_arn(names.default_bucket(k), object_level) for k in sorted(kinds)], None
    if prefix == "ssm" and "parameter" in types:
        wanted = scope.params_read(names) if _is_read(action) else scope.params_write(names)
        if not wanted:
            return [], f"{scope.name} may not {'read' if _is_read(action) else 'write'} parameters ({action})"
        return [parameter_arn(p) for p in wanted], None
    known = catalog(stage)
    if scope.queues is not None:
        known[("sqs", "queue")] = [f"arn:aws:sqs:{REGION}:{ACCOUNT}:{q}" for q in scope.queues(stage)]
    resources = [arn for t in types for arn in known.get((prefix, t), [])]
    if not resources:
        return [], f"no {prefix} resource of type {types} in checks.catalog for {action}"
    return resources, None


def _where(calls: list[awscalls.Call]) -> str:
    more = f" and {len(calls) - 1} more" if len(calls) > 1 else ""
    return f"{calls[0].where()}{more}"


def missing_grants(scope: Scope, stage: str, root: Path = REPO) -> list[str]:
    """Every action the code calls that the policy does not allow where it is needed."""
    policy = scope.policy(stage)
    problems = []
    for action, calls in sorted(scope.derived(root).items()):
        resources, why = required_resources(scope, stage, action)
        if why:
            problems.append(f"{why} (needed by {_where(calls)})")
        problems += [f"{policy.name} does not allow {action} on {r} (needed by {_where(calls)})"
                     for r in resources if not policy.allows(action, r)]
    return problems


def excess_grants(scope: Scope, stage: str, root: Path = REPO) -> list[str]:
    """Actions granted that no code calls (and no documented reason needs), wildcards, typos."""
    policy = scope.policy(stage)
    needed = {a.lower() for a in scope.derived(root)} | {a.lower() for a in scope.granted_without_call}
    problems = []
    for action in sorted(policy.granted_actions()):
        if "*" in action or "?" in action:
            problems.append(f"{policy.name} grants a wildcard action {action}")
        elif resource_types(action) is None:
            problems.append(f"{policy.name} grants {action}, which is not an IAM action")
        elif action.lower() not in needed:
            problems.append(f"{policy.name} grants {action} but no code calls it")
    for statement in policy.statements:
        for key in ("NotAction", "NotResource", "NotPrincipal"):
            if key in statement:
                problems.append(f"{policy.name} uses {key} (statement {statement.get('Sid')})")
    return problems


def out_of_scope_grants(scope: Scope, stage: str) -> list[str]:
    """Grants that reach beyond the resources the spec names: other stages, strangers, `*`."""
    policy = scope.policy(stage)
    names = Names(stage)
    other = Names("prod" if stage == "dev" else "dev")
    foreign = foreign_catalog(stage)
    problems = []
    for action in sorted(policy.granted_actions()):
        types = resource_types(action) or []
        prefix = action.partition(":")[0]
        if types and "*" in policy.resources_for(action):
            problems.append(f"{policy.name} grants {action} on * though it can be scoped to {types}")
        if prefix == "s3":
            object_level = "object" in types
            granted = scope.s3.get(action, frozenset())
            for kind in BUCKET_KINDS:
                allowed = policy.allows(action, bucket_arn(names.default_bucket(kind), object_level))
                if allowed != (kind in granted):
                    problems.append(f"{policy.name}: {action} on the {kind} bucket is "
                                    f"{'allowed' if allowed else 'denied'}, the contract says otherwise")
            strangers = [bucket_arn(other.default_bucket(k), object_level) for k in BUCKET_KINDS]
            strangers.append(bucket_arn("someone-elses-bucket", object_level))
        elif prefix == "ssm" and "parameter" in types:
            allowed_names = scope.params_read(names) if _is_read(action) else scope.params_write(names)
            strangers = [parameter_arn(p) for p in names.ssm_names().values() if p not in allowed_names]
            strangers += [parameter_arn(p) for p in other.ssm_names().values()]
            strangers.append(parameter_arn("/someone/else"))
        else:
            strangers = [arn for t in types for arn in foreign.get((prefix, t), [])]
        problems += [f"{policy.name} allows {action} on {arn}" for arn in strangers
                     if policy.allows(action, arn)]
    return problems
