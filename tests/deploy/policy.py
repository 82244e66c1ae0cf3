"""The deployment's IAM policies as data, and a small evaluator to ask them "is this allowed?".

The template's role policy is read with cfn-lint's YAML loader and its intrinsics resolved for given
parameter values (Ref, Fn::Sub, Fn::GetAtt for the few resource types the role names, Fn::If,
Fn::Join, conditions). The operator policy is the JSON file with its placeholders filled in.
Evaluation follows IAM for identity policies without conditions: an action is allowed on a resource
when some Allow statement matches both (`*` and `?` wildcards; actions case-insensitive) and no Deny
statement does. Which resource types an action takes comes from the IAM reference data cfn-lint ships.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import cfnlint.data.AdditionalSpecs
from cfnlint.decode import decode

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "template.yaml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
OPERATOR_POLICY = REPO / "deploy" / "operator-policy.json"

ACCOUNT = "123456789012"
REGION = "us-west-2"
DISTRIBUTION = "E2EXAMPLE0FRONT"
PLACEHOLDERS = {"__STAGE__": None, "__ACCOUNT_ID__": ACCOUNT, "__FRONTEND_DISTRIBUTION_ID__": DISTRIBUTION}
NO_VALUE = object()


# --- IAM reference data ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _iam_reference() -> dict[str, Any]:
    path = Path(cfnlint.data.AdditionalSpecs.__file__).parent / "Policies.json"
    return json.loads(path.read_text(encoding="utf-8"))


def resource_types(action: str) -> list[str] | None:
    """The resource types an IAM action can be scoped to ([] = only `*`); None for no such action."""
    prefix, _, name = action.partition(":")
    entry = _iam_reference().get(prefix.lower(), {}).get("Actions", {}).get(name.lower())
    if entry is None:
        return None
    return list(entry.get("Resources", []))


# --- evaluation -----------------------------------------------------------------------------------

def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@cache
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(glob: str, value: str, ignore_case: bool = False) -> bool:
    return _pattern(glob, ignore_case).fullmatch(value) is not None


@dataclass
class Policy:
    """The statements of one principal's identity policies."""

    statements: list[dict[str, Any]]
    name: str = "policy"

    def _matching(self, effect: str, action: str, resource: str) -> list[dict[str, Any]]:
        return [s for s in self.statements if s.get("Effect") == effect
                and any(matches(a, action, ignore_case=True) for a in _as_list(s.get("Action", [])))
                and any(matches(r, resource) for r in _as_list(s.get("Resource", [])))]

    def allows(self, action: str, resource: str) -> bool:
        allow = [s for s in self._matching("Allow", action, resource) if "Condition" not in s]
        return bool(allow) and not self._matching("Deny", action, resource)

    def allow_statements(self) -> list[dict[str, Any]]:
        return [s for s in self.statements if s.get("Effect") == "Allow"]

    def granted_actions(self) -> set[str]:
        """The action strings the Allow statements name, as written."""
        return {a for s in self.allow_statements() for a in _as_list(s.get("Action", []))}

    def resources_for(self, action: str) -> list[str]:
        """Every resource pattern an Allow statement grants `action` on."""
        return [r for s in self.allow_statements()
                if any(matches(a, action, ignore_case=True) for a in _as_list(s.get("Action", [])))
                for r in _as_list(s.get("Resource", []))]


# --- the template -------------------------------------------------------------------------------

def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template, errors = decode(str(path))
    if errors or template is None:
        raise ValueError(f"cannot read {path}: {errors}")
    return dict(template)


class Resolver:
    """Resolves the template's intrinsics for one set of parameter values."""

    PSEUDO = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
              "AWS::URLSuffix": "amazonaws.com"}

    def __init__(self, template: dict[str, Any], params: dict[str, str],
                 stack_name: str = "animl-ingest-py") -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.params = {name: str(spec.get("Default", "")) for name, spec
                       in template.get("Parameters", {}).items()}
        unknown = set(params) - set(self.params)
        if unknown:
            raise KeyError(f"not parameters of the template: {sorted(unknown)}")
        self.params.update(params)
        self.pseudo = dict(self.PSEUDO, **{"AWS::StackName": stack_name})

    def condition(self, name: str) -> bool:
        return bool(self.value(self.template["Conditions"][name]))

    def exists(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            handler = getattr(self, "_" + key.replace("::", "_").replace("Fn_", "fn_"), None)
            if key in ("Ref", "Condition") or key.startswith("Fn::"):
                if handler is None:
                    raise NotImplementedError(f"intrinsic {key} is not resolved by this evaluator")
                return handler(arg)
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}

    def _Ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        return self._resource_ref(name)

    def _Condition(self, name: str) -> bool:
        return self.condition(name)

    def _fn_Sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        values = {k: self.value(v) for k, v in variables.items()}

        def replace(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return str(values[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return str(self._fn_GetAtt(name.split(".", 1)))
            return str(self._Ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _fn_If(self, arg: list[Any]) -> Any:
        return self.value(arg[1] if self.condition(arg[0]) else arg[2])

    def _fn_Equals(self, arg: list[Any]) -> bool:
        a, b = (self.value(x) for x in arg)
        return str(a) == str(b)

    def _fn_Not(self, arg: list[Any]) -> bool:
        return not self.value(arg[0])

    def _fn_And(self, arg: list[Any]) -> bool:
        return all(self.value(x) for x in arg)

    def _fn_Or(self, arg: list[Any]) -> bool:
        return any(self.value(x) for x in arg)

    def _fn_Join(self, arg: list[Any]) -> str:
        return str(arg[0]).join(str(x) for x in self.value(arg[1]))

    def _fn_Select(self, arg: list[Any]) -> Any:
        return self.value(arg[1])[int(self.value(arg[0]))]

    def _fn_GetAtt(self, arg: Any) -> str:
        logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
        resource = self.resources[logical_id]
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if attribute != "Arn":
            raise NotImplementedError(f"GetAtt {logical_id}.{attribute}")
        if kind == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.value(props['QueueName'])}"
        if kind == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{self.value(props['LogGroupName'])}:*"
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{self.value(props['BucketName'])}"
        if kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{ACCOUNT}:role/{logical_id}"
        if kind == "AWS::Serverless::Function":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.value(props['FunctionName'])}"
        if kind == "AWS::Events::Rule":
            return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{self.value(props['Name'])}"
        raise NotImplementedError(f"GetAtt {logical_id}.Arn of a {kind}")

    def _resource_ref(self, logical_id: str) -> str:
        base, _, suffix = logical_id.partition(".")
        resource = self.resources[base]
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::Serverless::Function":
            function = self._fn_GetAtt([base, "Arn"])
            return f"{function}:{props['AutoPublishAlias']}" if suffix == "Alias" else function
        if kind == "AWS::S3::Bucket":
            return str(self.value(props["BucketName"]))
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.value(props['QueueName'])}"
        if kind == "AWS::SSM::Parameter":
            return str(self.value(props["Name"]))
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{self.value(props['TopicName'])}"
        if kind == "AWS::Batch::JobQueue":
            return f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{self.value(props['JobQueueName'])}"
        if kind == "AWS::Batch::ComputeEnvironment":
            return (f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/"
                    f"{self.value(props['ComputeEnvironmentName'])}")
        if kind == "AWS::Batch::JobDefinition":
            name = self.value(props["JobDefinitionName"])
            return f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/{name}:1"
        if kind == "AWS::Logs::LogGroup":
            return str(self.value(props["LogGroupName"]))
        return logical_id


INGEST_FUNCTION = "IngestFunction"
TEARDOWN_FUNCTION = "TeardownFunction"
JOB_ROLE = "ZipJobRole"


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's Lambda functions by logical id."""
    return {k: r for k, r in template["Resources"].items()
            if r["Type"] in ("AWS::Serverless::Function", "AWS::Lambda::Function")}


def the_function(template: dict[str, Any], logical_id: str = INGEST_FUNCTION) -> tuple[str, dict[str, Any]]:
    """One Lambda function of the template (logical id, resource): the ingest function by default."""
    found = functions(template)
    if logical_id not in found:
        raise AssertionError(f"no function {logical_id} in the template, found {sorted(found)}")
    return logical_id, found[logical_id]


def function_role(template: dict[str, Any], logical_id: str = INGEST_FUNCTION) -> tuple[str, dict[str, Any]]:
    _, function = the_function(template, logical_id)
    role = function["Properties"]["Role"]
    if not (isinstance(role, dict) and "Fn::GetAtt" in role):
        raise AssertionError("the function's Role must be a GetAtt of a role in the template")
    target = role["Fn::GetAtt"]
    role_id = target.split(".")[0] if isinstance(target, str) else target[0]
    return role_id, template["Resources"][role_id]


def role_policy(template: dict[str, Any], params: dict[str, str], logical_id: str = INGEST_FUNCTION,
                role_id: str | None = None) -> Policy:
    """Every statement attached to a role (the function's `logical_id`, or `role_id` itself): inline,
    and AWS::IAM::Policy resources."""
    resolver = Resolver(template, params)
    if role_id is None:
        role_id, role = function_role(template, logical_id)
    else:
        role = template["Resources"][role_id]
    if role["Properties"].get("ManagedPolicyArns"):
        raise AssertionError("managed policies cannot be checked here: write the statements inline")
    documents = [p["PolicyDocument"] for p in role["Properties"].get("Policies", [])]
    for logical, resource in template["Resources"].items():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") \
                and {"Ref": role_id} in resource["Properties"].get("Roles", []) \
                and resolver.exists(logical):
            documents.append(resource["Properties"]["PolicyDocument"])
    statements = [s for doc in documents for s in _as_list(resolver.value(doc)["Statement"])]
    return Policy(statements, f"role {role_id}")


def operator_policy(stage: str, path: Path = OPERATOR_POLICY) -> Policy:
    text = path.read_text(encoding="utf-8")
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, stage if value is None else value)
    left = sorted(set(re.findall(r"__[A-Z_]+__", text)))
    if left:
        raise AssertionError(f"unknown placeholders in {path.name}: {left}")
    document = json.loads(text)
    return Policy(_as_list(document["Statement"]), "operator policy")


# --- the handler the deployment runs --------------------------------------------------------------

def dockerfile_stages(path: Path = DOCKERFILE) -> dict[str, list[str]]:
    """Stage name (`FROM ... AS name`) -> its lines; the last stage is what a plain build makes."""
    stages: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?\s*$", line, re.IGNORECASE)
        if m:
            current = stages.setdefault(m.group(1) or f"stage{len(stages)}", [])
        elif current is not None:
            current.append(line)
    return stages


def dockerfile_cmd(stage: str, path: Path = DOCKERFILE) -> list[str]:
    """The exec-form CMD of one stage of the Dockerfile."""
    cmds = [line for line in dockerfile_stages(path)[stage] if line.startswith("CMD ")]
    if len(cmds) != 1:
        raise AssertionError(f"expected one CMD in stage {stage} of {path}, found {len(cmds)}")
    return list(json.loads(cmds[0][4:]))


def dockerfile_handler(path: Path = DOCKERFILE) -> str:
    """The handler the Lambda image's CMD names (the `function` stage, the default build)."""
    stages = list(dockerfile_stages(path))
    if stages[-1] != "function":
        raise AssertionError(f"the last stage (the default build) must be `function`: {stages}")
    command = dockerfile_cmd("function", path)
    if len(command) != 1:
        raise AssertionError(f"CMD must name exactly the handler: {command}")
    return command[0]


def template_handler(template: dict[str, Any], logical_id: str = INGEST_FUNCTION) -> str:
    _, function = the_function(template, logical_id)
    command = function["Properties"]["ImageConfig"]["Command"]
    if len(command) != 1:
        raise AssertionError(f"ImageConfig.Command must name exactly the handler: {command}")
    return command[0]
