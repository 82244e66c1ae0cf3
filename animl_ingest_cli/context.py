"""A stage opened for work: its names, parameters, buckets, API client, and AWS clients.

Everything that needs AWS (or the local stage's stand-ins) gets it from here, so tests can build a
`StageContext` around moto-backed clients, and the CLI never talks to AWS directly.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animl_ingest_cli import aws
from animl_ingest_cli.config import (
    BUCKET_KINDS,
    MAINTENANCE_CACHE_SECONDS,
    Names,
    check_stage,
    is_bucket_name,
    local_dir,
)
from animl_ingest_cli.errors import ConfigError, InputError
from animl_ingest_cli.params import LocalParams, Params, SsmParams
from animl_ingest_cli.stores import LocalStore, S3Store, Store


@dataclass
class Resolved:
    """A resolved name and where it came from (`default`, `ssm`, `env`, `local`)."""

    value: str | None
    source: str


@dataclass
class StageContext:
    stage: str
    client_factory: Callable[[str], Any] = aws.client
    local_root: Path | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _buckets: dict[str, Resolved] | None = field(default=None, repr=False)
    _maintenance: tuple[float, bool] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def names(self) -> Names:
        return Names(self.stage)

    @property
    def is_local(self) -> bool:
        return self.stage == "local"

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.client_factory(service)
            return self._clients[service]

    # --- parameters -----------------------------------------------------------------------------
    @property
    def params(self) -> Params:
        if self.is_local:
            assert self.local_root is not None
            return LocalParams(self.local_root / "parameters.json")
        return SsmParams(self.client("ssm"))

    def buckets(self) -> dict[str, Resolved]:
        """Bucket names: SSM parameter when present, else the default. Read once, then cached."""
        with self._lock:
            cached = self._buckets
        if cached is not None:
            return cached
        names = self.names
        found = self.params.get_many([names.bucket_param(k) for k in BUCKET_KINDS])
        out = {}
        for kind in BUCKET_KINDS:
            p = found.get(names.bucket_param(kind))
            if p is not None and not is_bucket_name(p.value):
                where = "parameters.json in ANIML_LOCAL_DIR" if self.is_local else "SSM"
                raise ConfigError(f"parameter {p.name} ({where}) is {p.value!r}, which is not a bucket "
                                  f"name (3-63 characters: a-z, 0-9, '.', '-')")
            out[kind] = Resolved(p.value, "ssm") if p else Resolved(names.default_bucket(kind), "default")
        with self._lock:
            self._buckets = out
        return out

    def bucket(self, kind: str) -> str:
        value = self.buckets()[kind].value
        assert value is not None
        return value

    def store(self, kind: str) -> Store:
        return self.store_for_bucket(self.bucket(kind))

    def store_for_bucket(self, bucket: str) -> Store:
        """The bucket's store. Only a valid bucket name is one (the local stage keeps each bucket in
        a folder of its name under ANIML_LOCAL_DIR: a name such as `../../x` would leave it)."""
        if not is_bucket_name(bucket):
            raise InputError(f"{bucket!r} is not a bucket name (3-63 characters: a-z, 0-9, '.', '-')")
        if self.is_local:
            assert self.local_root is not None
            return LocalStore(self.local_root / "buckets" / bucket, bucket=bucket,
                              meta_root=self.local_root / ".meta" / bucket)
        return S3Store(self.client("s3"), bucket)

    # --- maintenance ----------------------------------------------------------------------------
    def maintenance_on(self, max_age: float = MAINTENANCE_CACHE_SECONDS) -> bool:
        """The flag the ingest function obeys, read at most every `max_age` seconds."""
        now = time.monotonic()
        with self._lock:
            cached = self._maintenance
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        p = self.params.get(self.names.maintenance_param)
        value = bool(p and p.value.strip().lower() == "true")
        with self._lock:
            self._maintenance = (now, value)
        return value


def open_stage(stage: str | None = None, client_factory: Callable[[str], Any] | None = None,
               local_root: Path | None = None) -> StageContext:
    """Validate the stage and build its context. The local stage's folders live in ANIML_LOCAL_DIR."""
    name = check_stage(stage)
    root = local_root or (local_dir() if name == "local" else None)
    return StageContext(name, client_factory or aws.client, root)


def api_key_from_env() -> str | None:
    return os.environ.get("API_KEY") or os.environ.get("ANIML_API_KEY") or None
