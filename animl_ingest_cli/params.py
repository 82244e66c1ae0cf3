"""Parameters (SSM Parameter Store, or the local stage's JSON file) behind one small interface."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from animl_ingest_cli.aws import translated
from animl_ingest_cli.errors import ConfigError
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
        """The file's parameters, checked: a file an operator edited by hand fails with one message
        saying what is wrong where, never a KeyError half-way through a command."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the local parameters {self.path}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        fix = "fix it, or delete it to go back to the default names"
        try:
            data = json.loads(text)
        except ValueError as exc:
            where = (f" (line {exc.lineno}, column {exc.colno})"
                     if isinstance(exc, json.JSONDecodeError) else "")
            raise ConfigError(f"the local parameters {self.path} are not valid JSON{where}: {fix}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"the local parameters {self.path} must be a JSON object "
                              f'{{"<name>": {{"value": "<text>"}}, ...}}: {fix}')
        for name, item in data.items():
            value = item.get("value") if isinstance(item, dict) else None
            modified = item.get("modified") if isinstance(item, dict) else None
            ok = isinstance(value, str) and (modified is None or isinstance(modified, str))
            if ok and modified:
                try:
                    dt.datetime.fromisoformat(modified)
                except ValueError:
                    ok = False
            if not ok:
                shown = json.dumps(item, ensure_ascii=False)[:80]
                raise ConfigError(f'the local parameters {self.path}: {name!r} must be {{"value": '
                                  f'"<text>", "modified": "<ISO time>"}}, not {shown}: {fix}')
        return data

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
