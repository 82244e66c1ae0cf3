"""The promise, checked: every image is in exactly one place, nothing is in none.

Given the four buckets of a stage, the original objects (key -> md5 of their bytes) and animl-api's
catalog, `check` finds every place each original is in:
- `ingestion`: still at its key in the ingestion bucket (only acceptable once a run is over if that
  run reported it failed or unfinished);
- `parkinglot`: at its key in the parking lot (or in an interrupted forced unpark's staging area);
- `dead-letter`: a dead-letter object whose `original-key` metadata is its key, with its bytes (or a
  staged copy of one, left by an interrupted redrive);
- `served`: the catalog holds `<project>:<md5>` and the serving bucket has its three copies, the
  original byte for byte and made from this very key (`source-key` metadata).
It also checks every catalog image: its three serving copies exist, or its bytes are in the
dead-letter bucket (a redrive heals it), or (mid-way) still in the ingestion bucket or parking lot.
Bytes are read and hashed, never taken from ETags. The buckets are read with plain boto3 (or the
local stage's folders), not with the code under test. The per-image claims (`.animl-claims/` in the
serving bucket) are not images and are left out. Metadata values are decoded here independently of
the code: percent-encoded, or an RFC 2047 base64 word (`=?UTF-8?B?...?=`) for long keys.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.reliability import figures

STAGING = ".animl-moving/"
CLAIMS = ".animl-claims/"


def _text(value: str) -> str:
    if value.startswith("=?UTF-8?B?") and value.endswith("?="):
        return base64.b64decode(value[10:-2]).decode("utf-8")
    return unquote(value)
SIZES = ("original", "medium", "small")
_SERVING_KEY = re.compile(r"^(original|medium|small)/(.+)-(original|medium|small)\.([a-z0-9]+)$")


@dataclass
class Obj:
    md5: str
    metadata: dict[str, str]


class S3View:
    """One bucket through boto3: key -> Obj (bytes hashed, metadata unquoted)."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3, self.name = s3, bucket

    def objects(self) -> dict[str, Obj]:
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            for o in page.get("Contents", []):
                if o["Key"].startswith(CLAIMS):
                    continue
                r = self.s3.get_object(Bucket=self.name, Key=o["Key"])
                out[o["Key"]] = Obj(hashlib.md5(r["Body"].read()).hexdigest(),
                                    {k: _text(v) for k, v in (r.get("Metadata") or {}).items()})
        return out


class LocalView:
    """One bucket of the local stage: a folder, with sidecar JSON metadata."""

    def __init__(self, local_root: Path, bucket: str) -> None:
        from animl_ingest_cli.stores import LocalStore

        self.name = bucket
        self.store = LocalStore(local_root / "buckets" / bucket, bucket, local_root / ".meta" / bucket)

    def objects(self) -> dict[str, Obj]:
        out = {}
        for info in self.store.list():
            if info.key.startswith(CLAIMS):
                continue
            data = self.store.read(info.key).data
            out[info.key] = Obj(hashlib.md5(data).hexdigest(),
                                {k: _text(v) for k, v in info.metadata.items()})
        return out


@dataclass
class Report:
    places: dict[str, list[str]]
    violations: list[str] = field(default_factory=list)

    def assert_ok(self) -> Report:
        assert not self.violations, "invariants broken:\n  " + "\n  ".join(self.violations)
        return self

    def where(self, place: str) -> set[str]:
        return {k for k, p in self.places.items() if place in p}


def check(buckets: dict[str, Any], originals: dict[str, str], catalog: Any, *, final: bool = True,
          unfinished: Iterable[str] = (), reported: dict[str, str] | None = None) -> Report:
    """`buckets`: kind -> view (S3View/LocalView) for ingestion, serving, dead-letter, parkinglot.
    `final`: a run has ended normally (not killed); then every original not in `unfinished` is in
    exactly one place, and the serving bucket holds only complete sets. `reported`: key -> the
    outcome the last run reported for it (served / dead-lettered), which must match where it is."""
    objs = {kind: view.objects() for kind, view in buckets.items()}
    images = {row["_id"]: row for row in catalog.images()}
    unfinished = set(unfinished)
    places: dict[str, list[str]] = {k: [] for k in originals}
    violations: list[str] = []

    for key, md5 in originals.items():
        got = places[key]
        if _holds(objs["ingestion"], key, md5):
            got.append("ingestion")
        if _holds(objs["parkinglot"], key, md5) or _holds(objs["parkinglot"], STAGING + key, md5):
            got.append("parkinglot")
        got += ["dead-letter"] * sum(1 for o in objs["dead-letter"].values()
                                     if o.md5 == md5 and o.metadata.get("original-key") == key)
        if _served(objs["serving"], images, key, md5):
            got.append("served")
        if not got:
            violations.append(f"LOST: {key!r} (md5 {md5}) is in no bucket")
        elif len(got) > 1 and final and key not in unfinished:
            violations.append(f"{key!r} is in {len(got)} places: {got}")
        if final and "ingestion" in got and key not in unfinished:
            violations.append(f"{key!r} is still in the ingestion bucket, but the run did not report it")
        want = {"served": "served", "dead-lettered": "dead-letter"}.get((reported or {}).get(key, ""))
        if want and want not in got:
            violations.append(f"{key!r} was reported {reported[key]}, but it is in {got or 'no bucket'}")

    waiting = {o.md5 for kind in ("ingestion", "parkinglot") for o in objs[kind].values()}
    dead = {o.md5 for o in objs["dead-letter"].values()}
    for image_id, row in images.items():
        md5 = image_id.rsplit(":", 1)[-1]
        ext = row["md"].get("FileTypeExtension") or "jpg"
        if _complete(objs["serving"], image_id, ext, md5) or md5 in dead:
            continue
        if md5 in waiting and (not final or any(originals.get(k) == md5 for k in unfinished)):
            continue
        violations.append(f"catalog image {image_id} has neither its 3 serving copies nor a dead letter")

    if final:
        for key in objs["serving"]:
            m = _SERVING_KEY.match(key)
            if not m or m.group(1) != m.group(3):
                violations.append(f"serving key {key!r} is not a serving key")
                continue
            image_id, ext = m.group(2), m.group(4)
            # A partial set whose image is still waiting in the ingestion bucket (a failed write,
            # then a clean-up that failed too, under injected faults) is a state the rerun
            # completes; once nothing waits (every heal), only complete sets may remain.
            pending = objs["serving"][key].md5 in waiting or image_id.rsplit(":", 1)[-1] in waiting
            if pending and image_id in images:
                continue
            if image_id not in images or not _complete(objs["serving"], image_id, ext, None):
                violations.append(f"serving key {key!r} is not part of a complete set of a catalog image")

    lost = sum(1 for p in places.values() if not p)
    figures.add("objects followed", len(originals))
    figures.add("objects lost", lost)
    return Report(places, violations)


def _holds(objs: dict[str, Obj], key: str, md5: str) -> bool:
    o = objs.get(key)
    return o is not None and o.md5 == md5


def _complete(serving: dict[str, Obj], image_id: str, ext: str, md5: str | None) -> bool:
    keys = [f"{size}/{image_id}-{size}.{ext}" for size in SIZES]
    if not all(k in serving for k in keys):
        return False
    return md5 is None or serving[keys[0]].md5 == md5


def _served(serving: dict[str, Obj], images: dict[str, Any], key: str, md5: str) -> bool:
    for image_id, row in images.items():
        if image_id.rsplit(":", 1)[-1] != md5:
            continue
        ext = row["md"].get("FileTypeExtension") or "jpg"
        if _complete(serving, image_id, ext, md5) and \
                serving[f"original/{image_id}-original.{ext}"].metadata.get("source-key") == key:
            return True
    return False
