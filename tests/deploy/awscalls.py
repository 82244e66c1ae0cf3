"""The AWS actions the code needs, read statically from its boto3 calls (no hand-kept list).

1. Services: the string literals given to any `client("svc")` call (`boto3.client`, `aws.client`,
   `ctx.client`, `session.client`, ...), in the modules scanned.
2. Calls: `recv.method(...)` where `method` is an operation of one of those services in botocore's
   own service model (the names boto3 gives client methods), plus `get_paginator("op")`,
   `get_waiter("name")` and S3's managed transfers. A receiver that is visibly a client of one
   service (`client("s3").x()`, or a name or `self.attr` assigned from `client("s3")` in the same
   module) counts for that service only; any other receiver counts for every scanned service that
   has the operation. `self.method()` / `cls.method()` calls of a method the project defines itself
   are the project's own methods, and bare function calls are never client calls.
3. Actions: operation -> IAM action, `prefix:Operation` except where IAM names it otherwise
   (S3 mostly; see S3_ACTIONS) or needs no permission (sts:GetCallerIdentity).

Calls made through `getattr(client, name)` cannot be seen; the project does not make any. Clients
built from a service name held in a variable cannot be seen either: only the factories may do that
(CLIENT_FACTORIES, checked by the tests).
The Lambda's modules are those reachable by imports from `animl_ingest_cli.lambda_handler`.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import botocore.exceptions
import botocore.session
from botocore import xform_name

PACKAGE = "animl_ingest_cli"
LAMBDA_MODULE = f"{PACKAGE}.lambda_handler"
CLIENT_FACTORIES = {(f"{PACKAGE}.aws", "client")}  # (module, function) that pass a service through

# Operations IAM authorises under other action names. HeadObject/GetObject also need s3:ListBucket:
# without it S3 answers a missing key with 403 instead of 404, and the stores rely on the 404.
S3_ACTIONS: dict[str, tuple[str, ...]] = {
    "HeadObject": ("s3:GetObject", "s3:ListBucket"),
    "GetObject": ("s3:GetObject", "s3:ListBucket"),
    "ListObjects": ("s3:ListBucket",),
    "ListObjectsV2": ("s3:ListBucket",),
    "HeadBucket": ("s3:ListBucket",),
    "ListObjectVersions": ("s3:ListBucketVersions",),
    "CopyObject": ("s3:GetObject", "s3:PutObject"),  # GetObject on the source, PutObject on the target
    "UploadPartCopy": ("s3:GetObject", "s3:PutObject"),
    "DeleteObjects": ("s3:DeleteObject",),
    "CreateMultipartUpload": ("s3:PutObject",),
    "UploadPart": ("s3:PutObject",),
    "CompleteMultipartUpload": ("s3:PutObject",),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload",),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads",),
    "ListParts": ("s3:ListMultipartUploadParts",),
    "GetBucketNotificationConfiguration": ("s3:GetBucketNotification",),
    "PutBucketNotificationConfiguration": ("s3:PutBucketNotification",),
}
NO_PERMISSION = {("sts", "GetCallerIdentity")}  # IAM cannot deny it
IAM_PREFIXES = {"monitoring": "cloudwatch"}  # signing name -> IAM action prefix, where they differ

# boto3's S3 managed transfers (boto3.s3.inject) and the operations they make.
S3_TRANSFERS: dict[str, tuple[str, ...]] = {
    "upload_file": ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                    "AbortMultipartUpload"),
    "upload_fileobj": ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                       "AbortMultipartUpload"),
    "download_file": ("HeadObject", "GetObject"),
    "download_fileobj": ("HeadObject", "GetObject"),
    "copy": ("HeadObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy",
             "CompleteMultipartUpload", "AbortMultipartUpload"),
}
GENERIC_TRANSFER_NAMES = {"copy"}  # also a dict/list method: counted only on a visible S3 client


@dataclass(frozen=True)
class Call:
    """One AWS operation the code makes, and where."""

    module: str
    line: int
    function: str  # qualified name of the enclosing function ("" at module level)
    service: str
    method: str
    operation: str

    def where(self) -> str:
        inside = f" in {self.function}" if self.function else ""
        return f"{self.module}:{self.line}{inside} {self.service}.{self.method}"


@lru_cache(maxsize=1)
def _botocore() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def operations(service: str) -> dict[str, str]:
    """Client method name -> API operation name, from botocore's model ({} for no such service)."""
    try:
        model = _botocore().get_service_model(service)
    except botocore.exceptions.UnknownServiceError:
        return {}
    return {xform_name(op): op for op in model.operation_names}


def _waiter_operation(service: str, name: str) -> str | None:
    try:
        model = _botocore().get_waiter_model(service)
    except (botocore.exceptions.UnknownServiceError, botocore.exceptions.DataNotFoundError):
        return None
    for waiter in model.waiter_names:
        if xform_name(waiter) == name:
            return model.get_waiter(waiter).operation
    return None


def iam_actions(service: str, operation: str) -> tuple[str, ...]:
    """The IAM actions one API operation needs."""
    if (service, operation) in NO_PERMISSION:
        return ()
    if service == "s3" and operation in S3_ACTIONS:
        return S3_ACTIONS[operation]
    prefix = _botocore().get_service_model(service).signing_name
    return (f"{IAM_PREFIXES.get(prefix, prefix)}:{operation}",)


# --- modules and imports ------------------------------------------------------------------------

@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def _sources(root: Path, package: str) -> tuple[tuple[Path, str], ...]:
    """The package's files as they are now (path, digest of the text): what the parses below are
    cached on, so that a file changed since (the tests edit copies of the package) is read again."""
    files = sorted((root / package).rglob("*.py"))
    return tuple((p, hashlib.sha1(p.read_bytes()).hexdigest()) for p in files)


def discover(root: Path, package: str = PACKAGE) -> dict[str, Module]:
    """Every module of the package under `root`, parsed (once per state of its files)."""
    return dict(_discover(root, package, _sources(root, package)))


@lru_cache(maxsize=16)
def _discover(root: Path, package: str, sources: tuple[tuple[Path, str], ...]) -> dict[str, Module]:
    out: dict[str, Module] = {}
    for path, _ in sources:
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        out[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return out


def _imported_names(module: Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.name if module.is_package else module.name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and _call_name(node) in {"import_module", "__import__"}
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    return names


def imports(module: Module, modules: dict[str, Module]) -> set[str]:
    """The project modules importing `module` executes (parent packages included)."""
    out: set[str] = set()
    for name in _imported_names(module):
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in modules:
                out.add(candidate)
    return out


def reachable(start: str, modules: dict[str, Module]) -> set[str]:
    """`start` and every project module its imports reach, transitively."""
    if start not in modules:
        raise LookupError(f"module {start} not found: nothing to scan")
    parts = start.split(".")
    todo = [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imports(modules[name], modules) - seen)
    return seen


# --- calls ----------------------------------------------------------------------------------------

def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _literal_arg(node: ast.Call, keyword: str) -> str | None:
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    for kw in node.keywords:
        if kw.arg == keyword and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            return kw.value.value
    return None


def _client_service(node: ast.AST) -> str | None:
    """`svc` when `node` is a `*.client("svc")` call."""
    if isinstance(node, ast.Call) and _call_name(node) == "client":
        return _literal_arg(node, "service_name")
    return None


def _target_key(target: ast.AST) -> str | None:
    if isinstance(target, ast.Name):
        return target.id
    if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
            and target.value.id in {"self", "cls"}):
        return f"self.{target.attr}"
    return None


def _client_bindings(tree: ast.Module) -> dict[str, set[str]]:
    """Names and `self.attr`s assigned a `client("svc")` anywhere in the module."""
    out: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        service = _client_service(value)
        if service is None:
            continue
        for target in targets:
            key = _target_key(target)
            if key:
                out.setdefault(key, set()).add(service)
    return out


def services_used(modules: Iterable[Module]) -> set[str]:
    """Every service named by a literal `client("svc")` call that botocore knows."""
    found = set()
    for module in modules:
        for node in ast.walk(module.tree):
            service = _client_service(node)
            if service and operations(service):
                found.add(service)
    return found


def dynamic_clients(modules: Iterable[Module]) -> list[tuple[str, str, int]]:
    """(module, function, line) of every `client(...)` call whose service is not a literal: the
    services those make are invisible to this checker, so only the client factories may do it."""
    return [(m.name, function, node.lineno) for m in modules
            for function, node in _calls_with_scope(m.tree)
            if _call_name(node) == "client" and _client_service(node) is None]


def _project_functions(modules: Iterable[Module]) -> set[str]:
    return {node.name for m in modules for node in ast.walk(m.tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _receiver_services(receiver: ast.AST, bindings: dict[str, set[str]]) -> set[str] | None:
    service = _client_service(receiver)
    if service:
        return {service}
    key = _target_key(receiver)
    if key and key in bindings:
        return bindings[key]
    return None


def _calls_with_scope(tree: ast.Module) -> Iterable[tuple[str, ast.Call]]:
    """Every call in the module with the qualified name of the function it sits in."""
    def walk(node: ast.AST, scope: tuple[str, ...]) -> Iterable[tuple[str, ast.Call]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield from walk(child, (*scope, child.name))
                continue
            if isinstance(child, ast.Call):
                yield ".".join(scope), child
            yield from walk(child, scope)
    yield from walk(tree, ())


def scan(modules: Iterable[Module]) -> list[Call]:
    """Every AWS operation the given modules call."""
    modules = list(modules)
    services = services_used(modules)
    own = _project_functions(modules)
    calls: list[Call] = []
    for module in modules:
        bindings = _client_bindings(module.tree)
        for function, node in _calls_with_scope(module.tree):
            if not isinstance(node.func, ast.Attribute):
                continue
            method, receiver = node.func.attr, node.func.value
            visible = _receiver_services(receiver, bindings)
            candidates = sorted(visible if visible is not None else services)
            if visible is None and isinstance(receiver, ast.Name) and receiver.id in {"self", "cls"} \
                    and method in own:
                continue
            for service in candidates:
                for op_method, operation in _operations_of_call(node, method, service, visible):
                    calls.append(Call(module.name, node.lineno, function, service, op_method, operation))
    return sorted(set(calls), key=lambda c: (c.module, c.line, c.service, c.operation))


def _operations_of_call(node: ast.Call, method: str, service: str,
                        visible: set[str] | None) -> list[tuple[str, str]]:
    ops = operations(service)
    if method == "get_paginator":
        name = _literal_arg(node, "operation_name")
        return [(name, ops[name])] if name in ops else []
    if method == "get_waiter":
        name = _literal_arg(node, "waiter_name")
        op = _waiter_operation(service, name) if name else None
        return [(f"waiter {name}", op)] if op else []
    if service == "s3" and method in S3_TRANSFERS:
        if method in GENERIC_TRANSFER_NAMES and visible is None:
            return []
        return [(method, op) for op in S3_TRANSFERS[method]]
    if method in ops:
        return [(method, ops[method])]
    return []


def required_actions(calls: Iterable[Call]) -> dict[str, list[Call]]:
    """IAM action -> the calls that need it."""
    out: dict[str, list[Call]] = {}
    for call in calls:
        for action in iam_actions(call.service, call.operation):
            out.setdefault(action, []).append(call)
    return out


def actions_for(root: Path, start: str | None = None, package: str = PACKAGE) -> dict[str, list[Call]]:
    """The actions the package under `root` needs: all of it, or what module `start` reaches.
    Scanned once per state of the package's files (every policy test asks for the same scopes)."""
    found = _actions_for(root, start, package, _sources(root, package))
    return {action: list(calls) for action, calls in found.items()}


@lru_cache(maxsize=32)
def _actions_for(root: Path, start: str | None, package: str,
                 sources: tuple[tuple[Path, str], ...]) -> dict[str, list[Call]]:
    modules = _discover(root, package, sources)
    names = reachable(start, modules) if start else set(modules)
    return required_actions(scan(modules[n] for n in sorted(names)))
