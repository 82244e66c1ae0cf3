"""Per-image claims (claims.py) between actors of one process: a claim is held until its release is
written, so its receipt is never lost to a taker that came a moment too early."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from animl_ingest_cli.claims import Busy, Claims
from animl_ingest_cli.stores import LocalStore

MD5 = "0123456789abcdef0123456789abcdef"


def claim_store(root: Path) -> LocalStore:
    return LocalStore(root / ".claims", "claims", meta_root=root / ".meta" / ".claims")


def test_a_claim_being_released_is_not_taken_over_by_another_actor_of_the_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker A releases the claim with its receipt; worker B of the same process (a redelivered
    record of A's object, or a twin) asks for it at that very moment, before the release is written.
    B must wait (here: Busy at once, with no wait), not find A's work ended and take the claim over:
    A's release would then be refused and its receipt lost, and the redelivered record, finding
    neither the object nor a receipt, reported failed (an UnaccountedObjects retry in the Lambda)."""
    store = claim_store(tmp_path)
    a, b = Claims(store), Claims(claim_store(tmp_path))
    held = a.take(MD5, "ingestion/cam/a.jpg", wait=0)
    real_put = LocalStore.put
    asked: list[str] = []

    def put(self: LocalStore, key: str, data: bytes, *args: Any, **kw: Any) -> str:
        if json.loads(data).get("holder") is None and not asked:  # A's release, before it is written
            try:
                b.take(MD5, "ingestion/cam/a.jpg", wait=0)
                asked.append("taken over")
            except Busy:
                asked.append("busy")
        return real_put(self, key, data, *args, **kw)

    monkeypatch.setattr(LocalStore, "put", put)
    a.release(held, {"source": "ingestion/cam/a.jpg", "outcome": "served", "image_id": "p:" + MD5})
    monkeypatch.undo()
    assert asked == ["busy"]
    receipt = b.receipt(MD5, "ingestion/cam/a.jpg")
    assert receipt is not None and receipt["outcome"] == "served"
    assert b.take(MD5, "ingestion/cam/a.jpg", wait=0).done_for("ingestion/cam/a.jpg") is not None
