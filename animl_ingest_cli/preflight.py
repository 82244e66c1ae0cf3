"""Pre-flight: what would fail for every image is found once, before the first one.

A missing API URL or key, a bucket that does not exist, parameters that cannot be read, a local
folder that cannot be written: each would otherwise fail (or dead-letter) every image in turn. `ingest`
runs these checks before its first image, `ingest --dry-run` and `config --check` run the same ones
and also ask animl-api whether it accepts the key (a request that creates nothing).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animl_ingest_cli.context import StageContext, read_side_by_side
from animl_ingest_cli.errors import AnimlError, ApiError, ApiKeyRefused, InfraError, NotFound

# the buckets an ingest writes to (the ingestion bucket is checked too: zips are unpacked into it,
# unpark and the dead letters' origin point at it)
INGEST_BUCKETS = ("ingestion", "serving", "dead-letter", "parkinglot")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    error: AnimlError | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


def _run(name: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn())
    except AnimlError as exc:
        return Check(name, False, exc.message, exc)


def _writable(path: Path) -> str:
    """The folder, or the nearest parent that exists, can be written (nothing is created here)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise AnimlError(f"the local stage's folder {path} cannot be written ({probe} is not a writable "
                         f"folder): set ANIML_LOCAL_DIR to a folder you can write")
    return f"{path} writable"


def require_local_folder(ctx: StageContext) -> None:
    """The local stage's folder can be written: checked first, before its parameters are read."""
    if ctx.is_local:
        assert ctx.local_root is not None
        _writable(ctx.local_root)


def _bucket(ctx: StageContext, kind: str) -> str:
    store = ctx.store(kind)
    try:
        next(iter(store.list("")), None)
    except NotFound:
        raise InfraError(f"the {kind} bucket {ctx.bucket(kind)} does not exist on {ctx.stage} (check "
                         f"{ctx.names.bucket_param(kind)}, the AWS account and the region)") from None
    return f"{store.uri()} exists"


def _parameters(ctx: StageContext) -> str:
    calls: list[Callable[[], object]] = [ctx.buckets, ctx.maintenance_on]  # two requests side by side
    on = read_side_by_side(calls)[1]
    return f"parameters readable; maintenance {'on' if on else 'off'}"


def _api(ctx: StageContext, probe: bool) -> str:
    from animl_ingest_cli.api import GraphQLApi

    if ctx.is_local:  # not opened here: a dry run on the local stage writes nothing
        return "the local stage's embedded catalog"
    api = ctx.api()
    assert isinstance(api, GraphQLApi)
    if not probe:
        return f"{api.url}, key found"
    try:
        api.probe()
    except ApiKeyRefused:
        raise
    except ApiError as exc:
        raise InfraError(f"animl-api at {api.url} does not answer: {exc.message}") from None
    finally:
        api.close()
    return f"{api.url} answers and accepts the key"


def run_checks(ctx: StageContext, *, probe: bool = False, buckets: tuple[str, ...] = INGEST_BUCKETS,
               sources: Callable[[], object] | None = None) -> list[Check]:
    """Every check, in order; a check after a failed one that depends on it is not run. The checks
    that do not depend on each other run side by side: at a distance from the region each is a
    round trip, and one after the other they were most of the time before the first image.
    `sources`: the command's own check that its sources exist (it raises), asked with the others."""
    first: list[tuple[str, Callable[[], str]]] = []
    if sources is not None:
        def sources_exist() -> str:
            sources()
            return "the sources exist"
        first.append(("sources", sources_exist))
    if ctx.is_local:
        assert ctx.local_root is not None
        checks = [_run(*c) for c in first]
        checks.append(_run("local-folder", lambda: _writable(ctx.local_root)))  # type: ignore[arg-type]
        checks.append(_run("parameters", lambda: _parameters(ctx)))
        return checks
    checks = [_run("parameters", lambda: _parameters(ctx))]
    if not checks[0].ok:
        return checks
    # independent of each other: asked side by side (each is a round trip to the region), kept in order
    rest = first + [
        (f"{kind}-bucket", lambda kind=kind: _bucket(ctx, kind)) for kind in buckets]
    rest.append(("api", lambda: _api(ctx, probe)))
    checks.extend(read_side_by_side([lambda check=check: _run(*check) for check in rest]))  # type: ignore[misc]
    return checks


def require(ctx: StageContext, *, probe: bool = False, buckets: tuple[str, ...] = INGEST_BUCKETS,
            sources: Callable[[], object] | None = None) -> list[Check]:
    """`run_checks`, raising the first failure (one line, its own exit code)."""
    checks = run_checks(ctx, probe=probe, buckets=buckets, sources=sources)
    for c in checks:
        if c.error is not None:
            raise c.error
    return checks
