"""Parameters (SSM Parameter Store, or the local stage's JSON file) behind one small interface."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from animl_ingest_cli.aws import translated
from animl_ingest_cli.errors import StoreError
from animl_ingest_cli.files import atomic_write


@dataclass(frozen=True)
class Parameter:
    name: str
    value: str
    last_modified: dt.datetime | None = None


class Params(Protocol):
    def get(self, name: str) -> Parameter | None: ...

    def get_many(self, names: list[str]) -> dict[str, Parameter]: ...

    def put(self, name: str, value: str) -> None: ...


class SsmParams:
    def __init__(self, ssm: Any) -> None:
        self.ssm = ssm

    def get(self, name: str) -> Parameter | None:
        return self.get_many([name]).get(name)

    def get_many(self, names: list[str]) -> dict[str, Parameter]:
        out: dict[str, Parameter] = {}
        for start in range(0, len(names), 10):  # GetParameters takes at most 10 names
            chunk = names[start:start + 10]
            with translated("SSM GetParameters"):
                resp = self.ssm.get_parameters(Names=chunk, WithDecryption=True)
            for p in resp.get("Parameters", []):
                out[p["Name"]] = Parameter(p["Name"], p["Value"], p.get("LastModifiedDate"))
        return out

    def put(self, name: str, value: str) -> None:
        with translated(f"SSM PutParameter {name}"):
            self.ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)


class LocalParams:
    """The local stage's parameters: one JSON file, written atomically."""

    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read local parameters {self.path}: {exc}") from None

    def get(self, name: str) -> Parameter | None:
        return self.get_many([name]).get(name)

    def get_many(self, names: list[str]) -> dict[str, Parameter]:
        data = self._load()
        out = {}
        for name in names:
            if name in data:
                item = data[name]
                changed = dt.datetime.fromisoformat(item["modified"]) if item.get("modified") else None
                out[name] = Parameter(name, item["value"], changed)
        return out

    def put(self, name: str, value: str) -> None:
        with self._lock:
            data = self._load()
            data[name] = {"value": value, "modified": dt.datetime.now(dt.UTC).isoformat()}
            atomic_write(self.path, json.dumps(data, indent=2, sort_keys=True), prefix=".params-")
