"""The static AWS-call checker, on small synthetic packages: what it must see and what it must not."""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.deploy import awscalls, checks
from tests.deploy.policy import REPO, Policy


def make_package(root: Path, files: dict[str, str], package: str = awscalls.PACKAGE) -> Path:
    for rel, source in files.items():
        path = root / package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    for folder in [root / package, *(p for p in (root / package).rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return root


def actions(root: Path, start: str | None = None) -> set[str]:
    return set(awscalls.actions_for(root, start))


SYNTHETIC = {
    "lambda_handler.py": """
        from . import core

        def handler(event, context):
            return core.run(event)
    """,
    "core.py": """
        import boto3
        from animl_ingest_cli.store import Store

        def run(event):
            s3 = boto3.client("s3")
            body = s3.get_object(Bucket="b", Key="k")["Body"].read()
            opts = {"a": 1}
            opts.get("a")           # a dict's get: not AWS
            items = [1, 2]
            items.copy()            # a list's copy: not S3's managed copy
            Store().delete("k")     # the project's own method, no AWS operation name
            return body
    """,
    "store.py": """
        class Store:
            def delete(self, key):
                self.list()
                return key

            def list(self):
                return []
    """,
    "ops/maintenance.py": """
        from animl_ingest_cli import aws

        def turn_on():
            aws.client("ssm").put_parameter(Name="/images/maintenance-mode-dev", Value="true",
                                            Type="String", Overwrite=True)
    """,
    "aws.py": """
        import boto3

        def client(service):
            return boto3.client(service)
    """,
}


def test_lambda_scope_follows_imports_only(tmp_path: Path) -> None:
    root = make_package(tmp_path, SYNTHETIC)
    assert actions(root, awscalls.LAMBDA_MODULE) == {"s3:GetObject", "s3:ListBucket"}
    assert actions(root) == {"s3:GetObject", "s3:ListBucket", "ssm:PutParameter"}


def test_adding_a_call_adds_its_action(tmp_path: Path) -> None:
    files = dict(SYNTHETIC)
    files["core.py"] = SYNTHETIC["core.py"].replace(
        "return body", 'boto3.client("s3").delete_bucket(Bucket="b")\n            return body')
    root = make_package(tmp_path, files)
    assert "s3:DeleteBucket" in actions(root, awscalls.LAMBDA_MODULE)


def test_operation_names_map_to_iam_actions(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"lambda_handler.py": """
        import boto3

        class Mover:
            def __init__(self):
                self.s3 = boto3.client("s3")

            def move(self):
                pages = self.s3.get_paginator("list_objects_v2")
                self.s3.get_waiter("object_exists").wait(Bucket="b", Key="k")
                self.s3.copy_object(Bucket="b", Key="k", CopySource={"Bucket": "a", "Key": "k"})
                self.s3.upload_part_copy(Bucket="b", Key="k", PartNumber=1, UploadId="u",
                                         CopySource={"Bucket": "a", "Key": "k"})
                self.s3.delete_objects(Bucket="b", Delete={"Objects": []})
                boto3.client("sts").get_caller_identity()
                return pages
    """})
    found = awscalls.actions_for(root, awscalls.LAMBDA_MODULE)
    assert set(found) == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert {c.operation for c in found["s3:ListBucket"]} == {"ListObjectsV2", "HeadObject"}
    assert {c.function for c in found["s3:PutObject"]} == {"Mover.move"}


def test_visible_client_narrows_the_service(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"lambda_handler.py": """
        import boto3
        from . import other

        def handler(event, context):
            sqs = boto3.client("sqs")
            sqs.add_permission(QueueUrl="u", Label="l", AWSAccountIds=[], Actions=[])
            return other.go(event)
    """, "other.py": """
        import boto3

        def go(thing):
            boto3.client("sns")
            thing.remove_permission(Label="l")   # receiver unknown: every service that has it
    """})
    found = actions(root, awscalls.LAMBDA_MODULE)
    assert found == {"sqs:AddPermission", "sqs:RemovePermission", "sns:RemovePermission"}


def test_relative_and_dynamic_imports_are_followed(tmp_path: Path) -> None:
    root = make_package(tmp_path, {
        "lambda_handler.py": """
            import importlib
            from .sub import a

            def handler(event, context):
                importlib.import_module("animl_ingest_cli.sub.b")
                return a
        """,
        "sub/a.py": "from ..c import go\n",
        "sub/b.py": "import boto3\nboto3.client('batch').submit_job(jobName='j', jobQueue='q', "
                    "jobDefinition='d')\n",
        "c.py": "import boto3\ndef go():\n    boto3.client('ssm').get_parameters(Names=['x'])\n",
        "unused.py": "import boto3\nboto3.client('s3').delete_bucket(Bucket='b')\n",
    })
    assert actions(root, awscalls.LAMBDA_MODULE) == {"batch:SubmitJob", "ssm:GetParameters"}


def test_clients_from_variables_are_reported(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"ops.py": """
        from animl_ingest_cli import aws

        def counts(ctx):
            for service in ("sqs", "batch"):
                ctx.client(service)
            return aws.client("s3")
    """})
    modules = awscalls.discover(root).values()
    assert awscalls.dynamic_clients(modules) == [("animl_ingest_cli.ops", "counts", 6)]


def test_missing_handler_module_is_an_error(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"core.py": "x = 1\n"})
    with pytest.raises(LookupError):
        awscalls.actions_for(root, awscalls.LAMBDA_MODULE)


def copy_of_repo_package(tmp_path: Path) -> Path:
    shutil.copytree(REPO / awscalls.PACKAGE, tmp_path / awscalls.PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__"))
    handler = tmp_path / awscalls.PACKAGE / "lambda_handler.py"
    if not handler.exists():  # before the lead's handler lands: a stand-in that reaches the stores
        handler.write_text("from animl_ingest_cli import context, stores  # noqa: F401\n", encoding="utf-8")
    return tmp_path


def test_a_new_call_without_a_grant_fails_both_checks(tmp_path: Path) -> None:
    root = copy_of_repo_package(tmp_path)
    before = checks.missing_grants(checks.FUNCTION, "dev", root) + \
        checks.missing_grants(checks.OPERATOR, "dev", root)
    stores = root / awscalls.PACKAGE / "stores.py"
    stores.write_text(stores.read_text(encoding="utf-8") + textwrap.dedent("""

        def drop_bucket(store):
            store.s3.delete_bucket(Bucket=store.bucket)
    """), encoding="utf-8")
    for scope in (checks.FUNCTION, checks.OPERATOR):  # both reach the stores
        after = checks.missing_grants(scope, "dev", root)
        new = [p for p in after if p not in before]
        assert any("s3:DeleteBucket" in p for p in new), (scope.name, new)


def test_policy_evaluation() -> None:
    policy = Policy([
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b-dev/*"]},
        {"Effect": "Allow", "Action": "ssm:GetParameters",
         "Resource": "arn:aws:ssm:us-west-2:1:parameter/x-??"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b-dev/secret/*"},
    ])
    assert policy.allows("s3:getobject", "arn:aws:s3:::b-dev/a/b.jpg")
    assert not policy.allows("s3:GetObject", "arn:aws:s3:::b-dev")
    assert not policy.allows("s3:GetObject", "arn:aws:s3:::b-dev/secret/k")
    assert not policy.allows("s3:PutObject", "arn:aws:s3:::b-dev/a")
    assert policy.allows("ssm:GetParameters", "arn:aws:ssm:us-west-2:1:parameter/x-ab")
    assert not policy.allows("ssm:GetParameters", "arn:aws:ssm:us-west-2:1:parameter/x-abc")


def test_checks_catch_broad_or_foreign_grants(tmp_path: Path) -> None:
    role = checks.FUNCTION.policy("dev")
    broad = Policy(role.statements + [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::animl-images-serving-dev/*"},
        {"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::animl-images-*/*"},
        {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": "*"},
        {"Effect": "Allow", "Action": "sqs:DeleteQueue",
         "Resource": "arn:aws:sqs:us-west-2:123456789012:animl-ingest-dev-failed-dlq"},
    ], "broad role")
    scope = dataclasses.replace(checks.FUNCTION, policy=lambda stage: broad)
    problems = checks.out_of_scope_grants(scope, "dev")
    assert any("s3:DeleteObject on the serving bucket is allowed" in p for p in problems)
    assert any("animl-images-ingestion-prod" in p for p in problems)
    assert any("ssm:GetParameters on * though" in p for p in problems)
    assert any("maintenance-mode-prod" in p for p in problems)
    excess = checks.excess_grants(scope, "dev", copy_of_repo_package(tmp_path))
    assert any("wildcard action s3:*" in p for p in excess)
    assert any("sqs:DeleteQueue but no code calls it" in p for p in excess)
