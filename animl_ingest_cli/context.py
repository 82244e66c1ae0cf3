"""A stage opened for work: its names, parameters, buckets, API client, and AWS clients.

This is the one place that decides which backend a stage uses: the store for a bucket, the parameter
store, the API (the embedded catalog on `local`, animl-api elsewhere) and its key, and records where
each resolved value came from (`Resolved`). Everything that needs AWS (or the local stage's
stand-ins) gets it from here, so tests can build a `StageContext` around moto-backed clients, and the
CLI never talks to AWS directly.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from animl_ingest_cli import aws, redact
from animl_ingest_cli.config import (
    API_KEY_ENV,
    BUCKET_KINDS,
    MAINTENANCE_CACHE_SECONDS,
    Names,
    check_stage,
    is_bucket_name,
    local_dir,
    maintenance_flag,
)
from animl_ingest_cli.errors import ConfigError, InputError, NotFound
from animl_ingest_cli.params import LocalParams, Params, SsmParams
from animl_ingest_cli.stores import LocalStore, S3Store, Store

if TYPE_CHECKING:
    from animl_ingest_cli.api import Api

R = TypeVar("R")

CATALOG_FILE = "catalog.sqlite"  # the local stage's embedded catalog, in its folder
BUCKETS_DIR = "buckets"  # the local stage's buckets, one folder each


def read_side_by_side(calls: Sequence[Callable[[], R]]) -> list[R]:
    """Reads at the same time, each in a daemon thread of its own; their results in order (the
    first exception, in order, raised). They only read, so a Ctrl-C while this waits ends the wait
    at once and leaves them to die with the process: joined instead (a ThreadPoolExecutor's threads
    are, at its exit and at the interpreter's), a hung request would hold the command for its whole
    timeout, minutes for botocore's retries of a 60 s read. Not for writes: `ingest.side_by_side`
    waits for every one."""
    results: list[Any] = [None] * len(calls)
    failures: list[BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # noqa: BLE001 - raised in the waiting thread
            failures[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True, name="read-ahead")
               for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()  # a Ctrl-C interrupts it (KeyboardInterrupt in the main thread)
    first = next((f for f in failures if f is not None), None)
    if first is not None:
        raise first
    return results


@dataclass
class Resolved:
    """A resolved value and where it came from: `source` is `default`, `ssm` (or the local stage's
    parameters file), `env` or `secret`; `where` names the parameter, variable or secret behind it."""

    value: str | None
    source: str
    where: str | None = None


@dataclass
class StageContext:
    stage: str
    client_factory: Callable[[str], Any] = aws.client
    local_root: Path | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _buckets: dict[str, Resolved] | None = field(default=None, repr=False)
    _maintenance: tuple[float, bool] | None = field(default=None, repr=False)
    _api_url: Resolved | None = field(default=None, repr=False)
    _secret_key: str | None = field(default=None, repr=False)  # read once (already redacted)
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
            out[kind] = (Resolved(p.value, "ssm", p.name) if p else
                         Resolved(names.default_bucket(kind), "default", names.bucket_param(kind)))
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
            return LocalStore(self.bucket_dir(bucket), bucket=bucket,
                              meta_root=self.local_root / ".meta" / bucket)
        return S3Store(self.client("s3"), bucket)

    def bucket_dir(self, bucket: str) -> Path:
        """The local stage's folder for `bucket`."""
        assert self.local_root is not None
        return self.local_root / BUCKETS_DIR / bucket

    @property
    def catalog_path(self) -> Path:
        """The local stage's embedded catalog (its stand-in for animl-api)."""
        assert self.local_root is not None
        return self.local_root / CATALOG_FILE

    def read_ahead(self, api: bool = True, also: tuple[Callable[[], object], ...] = ()) -> None:
        """Read what a run needs first side by side, each cached: the bucket names, the maintenance
        flag, (with `api`) the API URL, and the calls in `also`. At a distance from the region each
        is a round trip; one after the other they were three before the first image. A failure is
        left to the call that needs the value, which meets and reports it again; an interruption
        (KeyboardInterrupt and the like) is raised."""
        calls: list[Callable[[], object]] = [self.buckets, self.maintenance_on, *also]
        if api and not self.is_local:
            calls.append(self.api_url)

        def left_to_its_caller(call: Callable[[], object]) -> Callable[[], None]:
            def read() -> None:
                try:
                    call()
                except Exception:  # noqa: BLE001, S110 - met and reported again where it is needed
                    pass
            return read

        read_side_by_side([left_to_its_caller(c) for c in calls])  # (a Ctrl-C: read_side_by_side)

    # --- the API --------------------------------------------------------------------------------
    def api_url(self) -> Resolved:
        """animl-api's URL, from the SSM parameter `/api/url-<stage>`; ConfigError when it is missing.
        The local stage's API is its embedded catalog. Read once, then cached (as the bucket names)."""
        if self.is_local:
            return Resolved(str(self.catalog_path), "default")
        with self._lock:
            cached = self._api_url
        if cached is not None:
            return cached
        param = self.names.api_url_param
        found = self.params.get(param)
        if found is None or not found.value.strip():
            raise ConfigError(f"no API URL: SSM parameter {param} is missing")
        resolved = Resolved(found.value.strip(), "ssm", param)
        with self._lock:
            self._api_url = resolved
        return resolved

    def api_key_source(self) -> Resolved:
        """Where the API key comes from, without reading it (its value is never in a Resolved):
        env API_KEY (the deployed function), else ANIML_API_KEY, else Secrets Manager."""
        for var in API_KEY_ENV:
            if os.environ.get(var):
                return Resolved(None, "env", var)
        if self.is_local:
            return Resolved(None, "default")  # the embedded catalog needs none
        return Resolved(None, "secret", f"Secrets Manager {self.names.api_secret}, field apikey")

    def api_key(self) -> str:
        """The API key (`api_key_source`), registered with `redact` before it is returned. From
        Secrets Manager it is read once (the pre-flight's check and the run's client both ask for
        it: a round trip each at a distance); a failure is not kept, and is met again."""
        source = self.api_key_source()
        if source.source == "env":
            assert source.where is not None
            return redact.usable_api_key(os.environ[source.where], f"env {source.where}")
        with self._lock:
            cached = self._secret_key
        if cached is not None:
            return cached
        key = self._key_from_secret()
        with self._lock:
            self._secret_key = key
        return key

    def _key_from_secret(self) -> str:
        secret = self.names.api_secret
        try:
            # botocore's DEBUG records would print the response body
            with redact.reading_secret(), aws.translated(f"Secrets Manager GetSecretValue {secret}"):
                resp = self.client("secretsmanager").get_secret_value(SecretId=secret)
        except NotFound:
            raise ConfigError(f"no API key: secret {secret} not found (or set API_KEY)") from None
        text = resp.get("SecretString") or ""
        try:
            doc = json.loads(text)
        except ValueError:
            raise ConfigError(f"secret {secret} is not JSON") from None
        found = doc.get("apikey") if isinstance(doc, dict) else None
        if not isinstance(found, str) or not found:
            raise ConfigError(f"secret {secret} has no field apikey")
        return redact.usable_api_key(found, f"secret {secret}")

    def api(self, time_left: Callable[[], float] | None = None) -> Api:
        """The stage's API: the embedded catalog for `local`, else animl-api at `/api/url-<stage>`
        with the stage's key. Imported here, not at the top: operator commands never need requests."""
        if self.is_local:
            from animl_ingest_cli.api_local import LocalApi

            return LocalApi(self.catalog_path)
        from animl_ingest_cli.api import GraphQLApi

        return GraphQLApi(self.api_url().value or "", self.api_key(), time_left=time_left)

    # --- maintenance ----------------------------------------------------------------------------
    def maintenance_on(self, max_age: float = MAINTENANCE_CACHE_SECONDS) -> bool:
        """The flag the ingest function obeys, read at most every `max_age` seconds."""
        now = time.monotonic()
        with self._lock:
            cached = self._maintenance
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        p = self.params.get(self.names.maintenance_param)
        value = maintenance_flag(p.value if p else None)
        with self._lock:
            self._maintenance = (now, value)
        return value


def open_stage(stage: str | None = None, client_factory: Callable[[str], Any] | None = None,
               local_root: Path | None = None, connections: int | None = None) -> StageContext:
    """Validate the stage and build its context. The local stage's folders live in ANIML_LOCAL_DIR.
    `connections`: requests the caller keeps under way at once; the AWS clients' connection pools
    are sized for them (ignored with a `client_factory`, which makes its own clients)."""
    name = check_stage(stage)
    root = local_root or (local_dir() if name == "local" else None)
    if client_factory is None:
        client_factory = aws.client if connections is None else functools.partial(
            aws.client, max_pool_connections=connections)
    return StageContext(name, client_factory, root)
