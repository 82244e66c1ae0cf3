"""The local stage's embedded animl-api: a SQLite catalog that applies animl-api's createImage rules.

The validation rules are animl-api's createImage rules (api_rules, docs/animl.md); on top of them the
image id is `<projectId>:<md5>`, and a second image with the same id in a project is refused with
Mongo's E11000 text while the attempt still carries the id. The test stand-in server
(tests/apistub.py) serves this same catalog, so the rules live in one place.

One file, many writers: WAL journal, a busy timeout, one connection per thread, and every write in
a `BEGIN IMMEDIATE` transaction, so threads of one process and several processes can share it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animl_ingest_cli.api import ImageAttempt, PerThread
from animl_ingest_cli.api_rules import check_md, duplicate_text, normalise_md
from animl_ingest_cli.errors import ApiError, StoreError
from animl_ingest_cli.stores import NO_SPACE

DEFAULT_PROJECT = "default_project"
BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS cameras (
  serial TEXT PRIMARY KEY, project TEXT NOT NULL, make TEXT, model TEXT, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
  _id TEXT PRIMARY KEY, project TEXT, override_serial TEXT, fields TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
  _id TEXT PRIMARY KEY, project TEXT NOT NULL, serial TEXT, fileName TEXT, path TEXT,
  dateTimeOriginal TEXT, make TEXT, model TEXT, imageBytes INTEGER, batch TEXT, created TEXT NOT NULL,
  md TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS image_errors (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, _id TEXT NOT NULL UNIQUE, image TEXT, batch TEXT, path TEXT,
  error TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batch_errors (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, _id TEXT NOT NULL UNIQUE, batch TEXT NOT NULL,
  error TEXT NOT NULL, created TEXT NOT NULL);
"""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class AttemptRecord:
    """createImage's full answer, as animl-api shapes it (the stand-in server needs the error ids)."""

    image_id: str
    errors: list[dict[str, str]]   # [{"_id": uuid, "error": text}]

    def attempt(self) -> ImageAttempt:
        return ImageAttempt(self.image_id, [e["error"] for e in self.errors])


class LocalApi:
    """The Api of the local stage, backed by one SQLite file (see the module docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conns = PerThread(self._connect, lambda c: c.close())
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._tx() as c:
                for statement in _statements(SCHEMA):  # executescript would commit on its own
                    c.execute(statement)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open local catalog {self.path}: {exc}") from None

    def __repr__(self) -> str:
        return f"LocalApi({str(self.path)!r})"

    # --- connections ----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # used by its own thread only; check_same_thread=False lets close() end it from another
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _conn(self) -> sqlite3.Connection:
        return self._conns.get()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from the start (no lost check-then-insert)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")  # a COMMIT that fails (a full disk) rolls back too: never left open
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite rolled back already
            raise

    def close(self) -> None:
        """Close every connection this object opened (call once no thread uses it any more)."""
        self._conns.close_all()

    # --- set-up for the local stage and tests ---------------------------------------------------
    def register_camera(self, serial: str, project: str) -> None:
        """A wireless camera's active registration: its images go to `project`."""
        with self._tx() as c:
            c.execute("INSERT INTO cameras (serial, project, created) VALUES (?, ?, ?) "
                      "ON CONFLICT(serial) DO UPDATE SET project = excluded.project",
                      (serial, project, now_iso()))

    def register_batch(self, batch_id: str, project: str, override_serial: str | None = None) -> None:
        """A bulk upload's Batch record (made by the frontend in animl): its project, its overrideSerial."""
        with self._tx() as c:
            c.execute("INSERT INTO batches (_id, project, override_serial, fields, updated) "
                      "VALUES (?, ?, ?, '{}', ?) ON CONFLICT(_id) DO UPDATE SET project = excluded.project, "
                      "override_serial = excluded.override_serial", (batch_id, project, override_serial,
                                                                     now_iso()))

    # --- the Api --------------------------------------------------------------------------------
    def create_image(self, md: dict[str, Any]) -> ImageAttempt:
        return self.create_image_record(md).attempt()

    def create_image_record(self, md: dict[str, Any]) -> AttemptRecord:
        """createImage with animl-api's answer shape (used by the stand-in server)."""
        with catalog_errors(self.path):
            return self._create_image(md)

    def _create_image(self, md: dict[str, Any]) -> AttemptRecord:
        if not isinstance(md, dict):
            raise ApiError("md must be a JSON object")
        batch_id = normalise_md(md).get("batchId") or None
        with self._tx() as c:
            project, override = DEFAULT_PROJECT, None
            camera = None
            if batch_id:
                row = c.execute("SELECT project, override_serial FROM batches WHERE _id = ?",
                                (batch_id,)).fetchone()
                if row is not None:
                    project = row["project"] or DEFAULT_PROJECT
                    override = row["override_serial"]
            checked = check_md(md, override)
            norm = checked.md
            if not batch_id:
                camera = c.execute("SELECT project FROM cameras WHERE serial = ?",
                                   (checked.camera_id,)).fetchone()
                if camera is not None:
                    project = camera["project"]
            image_id = f"{project}:{norm['hash']}"
            errors = list(checked.errors)
            if not errors:
                if c.execute("SELECT 1 FROM images WHERE _id = ?", (image_id,)).fetchone():
                    errors.append(duplicate_text(image_id))
                else:
                    if not batch_id and camera is None:  # animl-api registers a new wireless camera
                        c.execute("INSERT INTO cameras (serial, project, make, model, created) "
                                  "VALUES (?, ?, ?, ?, ?)", (checked.camera_id, project, norm.get("make"),
                                                             norm.get("model"), now_iso()))
                    c.execute(
                        "INSERT INTO images (_id, project, serial, fileName, path, dateTimeOriginal, make,"
                        " model, imageBytes, batch, created, md) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (image_id, project, checked.camera_id, _text(norm.get("fileName")),
                         _text(norm.get("path")), _text(norm.get("dateTimeOriginal")),
                         _text(norm.get("make")), _text(norm.get("model")), _int(norm.get("imageBytes")),
                         batch_id, now_iso(), json.dumps(md, default=str)))
            out = []
            for text in errors:
                record = self._insert_image_error(c, text, image_id, batch_id,
                                                  _text(norm.get("path") or norm.get("fileName")))
                out.append({"_id": record["_id"], "error": text})
        return AttemptRecord(image_id, out)

    def create_image_error(self, error: str, image: str, batch: str | None) -> None:
        self.create_image_error_record(error, image, batch)

    def create_image_error_record(self, error: str, image: str, batch: str | None) -> dict[str, Any]:
        with catalog_errors(self.path), self._tx() as c:
            return self._insert_image_error(c, error, image, batch, None)

    @staticmethod
    def _insert_image_error(c: sqlite3.Connection, error: str, image: str | None, batch: str | None,
                            path: str | None) -> dict[str, Any]:
        record = {"_id": str(uuid.uuid4()), "image": image, "batch": batch, "path": path,
                  "error": error, "created": now_iso()}
        c.execute("INSERT INTO image_errors (_id, image, batch, path, error, created) "
                  "VALUES (:_id, :image, :batch, :path, :error, :created)", record)
        return record

    def update_batch(self, fields: dict[str, Any]) -> None:
        self.update_batch_record(fields)

    def update_batch_record(self, fields: dict[str, Any]) -> dict[str, Any]:
        """updateBatch, as an upsert: the local stage has no frontend to create Batch records."""
        batch_id = fields.get("_id")
        if not batch_id:
            raise ApiError("updateBatch needs the batch _id")
        with catalog_errors(self.path), self._tx() as c:
            row = c.execute("SELECT fields, override_serial FROM batches WHERE _id = ?",
                            (batch_id,)).fetchone()
            merged = json.loads(row["fields"]) if row else {}
            merged.update({k: v for k, v in fields.items() if k != "_id"})
            override = fields.get("overrideSerial", row["override_serial"] if row else None)
            c.execute("INSERT INTO batches (_id, project, override_serial, fields, updated) "
                      "VALUES (?, NULL, ?, ?, ?) ON CONFLICT(_id) DO UPDATE SET "
                      "override_serial = excluded.override_serial, fields = excluded.fields, "
                      "updated = excluded.updated",
                      (batch_id, override, json.dumps(merged, default=str), now_iso()))
        return {"_id": batch_id, **merged}

    def create_batch_error(self, error: str, batch: str) -> None:
        self.create_batch_error_record(error, batch)

    def create_batch_error_record(self, error: str, batch: str) -> dict[str, Any]:
        record = {"_id": str(uuid.uuid4()), "batch": batch, "error": error, "created": now_iso()}
        with catalog_errors(self.path), self._tx() as c:
            c.execute("INSERT INTO batch_errors (_id, batch, error, created) "
                      "VALUES (:_id, :batch, :error, :created)", record)
        return record

    # --- reading back (tests, the CLI summary) ---------------------------------------------------
    def _rows(self, sql: str, json_column: str | None = None) -> list[dict[str, Any]]:
        rows = [dict(r) for r in self._conn().execute(sql).fetchall()]
        if json_column:
            for r in rows:
                r[json_column] = json.loads(r[json_column])
        return rows

    def images(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM images ORDER BY rowid", json_column="md")

    def image_errors(self) -> list[dict[str, Any]]:
        return self._rows("SELECT _id, image, batch, path, error, created FROM image_errors ORDER BY seq")

    def batches(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM batches ORDER BY rowid", json_column="fields")

    def batch_errors(self) -> list[dict[str, Any]]:
        return self._rows("SELECT _id, batch, error, created FROM batch_errors ORDER BY seq")

    def cameras(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM cameras ORDER BY rowid")


@contextmanager
def catalog_errors(path: Path) -> Iterator[None]:
    """SQLite's errors as the Api's: a full disk is a StoreError with code NO_SPACE (it fails the
    item, a rerun finishes it), anything else a transient ApiError, as an unreachable API is."""
    try:
        yield
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "is full" in str(exc):
            raise StoreError(f"local catalog {path}: no space left on device", code=NO_SPACE) from None
        raise ApiError(f"local catalog: {exc}", transient=True) from None


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
