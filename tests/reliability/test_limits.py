"""S3's real limits (issue 16 item 4), which moto does not enforce and s3rules.py does: a key of at
most 1024 bytes of UTF-8, user metadata of at most 2 KB counted as S3 counts it. The longest keys
a camera or a zip can give still dead-letter, redrive back to their exact key, and serve."""

from __future__ import annotations

import pytest

from animl_ingest_cli import keys
from animl_ingest_cli.api import GraphQLApi
from animl_ingest_cli.ingest import DEAD_LETTERED, SERVED, dead_letter_metadata
from animl_ingest_cli.limits import MAX_KEY_BYTES, MAX_METADATA_BYTES, decode_meta, s3_metadata_size
from tests.reliability.conftest import BUCKETS, World, jpeg

LONG_KEYS = {
    "non-latin": "cam/" + "é" * 500 + ".jpg",  # 1008 bytes: 3000 percent-encoded
    "cjk-batch": "batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f/" + "写真" * 160 + "/IMG 1.JPG",
    "ascii-spaces": "cam/" + "a b+" * 250 + ".png",  # 1008 bytes, spaces and + percent-encoded
}


@pytest.mark.parametrize("name", sorted(LONG_KEYS))
def test_longest_keys_dead_letter_redrive_and_serve(world: World, name: str) -> None:
    key = LONG_KEYS[name]
    assert len(key.encode()) <= MAX_KEY_BYTES
    data = jpeg(8000 + len(name))
    world.put(key, data if not key.endswith(".png") else data)
    refused = world.ingest(api=GraphQLApi(world.stub.url, "not-the-key", max_attempts=1))
    out = refused[key]
    assert out.outcome == DEAD_LETTERED and out.complete, out
    (dl,) = world.keys("dead-letter")
    assert len(dl.encode()) <= MAX_KEY_BYTES
    meta = world.s3.head_object(Bucket=BUCKETS["dead-letter"], Key=dl)["Metadata"]
    assert s3_metadata_size(meta) <= MAX_METADATA_BYTES
    assert decode_meta(meta["original-key"]) == key  # never cut
    world.check(refused)
    assert world.redrive_all() == 1
    assert world.keys("ingestion") == [key]  # back to its exact key
    served = world.ingest()
    assert served[key].outcome == SERVED, served[key]
    world.check(served)


def test_dead_letter_key_is_short_and_stable() -> None:
    name = keys.file_name("é" * 600 + ".JPG")
    a = keys.dead_letter_key("Forbidden", None, name, origin="b/k1")
    assert len(a.encode()) <= MAX_KEY_BYTES and a.endswith(".jpg")
    assert a == keys.dead_letter_key("Forbidden", None, name, origin="b/k1")  # stable
    assert a != keys.dead_letter_key("Forbidden", None, name, origin="b/k2")  # per source
    assert keys.dead_letter_key("Forbidden", None, name, 7, origin="b/k1").endswith("-7.jpg")
    assert keys.dead_letter_key("X", "p:1", "a.b.jpg") == "X/p:1/a.b.jpg"  # short names unchanged


def test_metadata_counted_as_s3_counts_it() -> None:
    """Names without `x-amz-meta-`, plus values, UTF-8 bytes; the error is cut, the key never."""
    key = "写" * 341  # 1023 bytes
    meta = dead_letter_metadata("animl-images-ingestion-dev", key, "é" * 5000, "p:" + "0" * 32,
                                "batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f")
    assert s3_metadata_size(meta) <= MAX_METADATA_BYTES
    assert decode_meta(meta["original-key"]) == key
    assert decode_meta(meta["error"]).startswith("é") and "%" not in decode_meta(meta["error"])
    short = dead_letter_metadata("b", "k.jpg", "Forbidden", None, None)
    assert short["original-key"] == "k.jpg" and short["error"] == "Forbidden"  # the contract's form
