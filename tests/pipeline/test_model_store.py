import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.errors import InvalidModel, UnknownModel
from pipeline.messages import ModelRef
from pipeline.scoring.engine.cache import ModelCache
from pipeline.stores.model_store import ModelStore


@pytest.fixture
def store(s3: Any, bucket: str) -> ModelStore:
    return ModelStore(s3, bucket)


def test_publishing_numbers_versions_and_records_what_the_model_is(
    store: ModelStore, binary_model: Any
) -> None:
    text = binary_model.model_to_string().encode()

    first = store.publish("churn", text, "m.txt")
    second = store.publish("churn", text, "m.txt")

    assert (first.version, second.version) == (1, 2)
    assert store.versions("churn") == [1, 2]
    record = store.record(ModelRef(name="churn", version=2))
    assert record.info.feature_names == ["age", "income", "score", "balance"]
    assert record.info.objective == "binary"
    assert record.info.num_trees == 25
    assert len(record.sha256) == 64
    assert record.published_at <= datetime.now(UTC)
    assert store.model_text(record.ref).encode() == text


def test_latest_unless_pinned(store: ModelStore, binary_model: Any) -> None:
    for _ in range(3):
        store.publish("churn", binary_model.model_to_string().encode(), "m")

    assert store.resolve("churn").version == 3
    assert store.resolve("churn", pinned=2).version == 2
    with pytest.raises(UnknownModel, match=r"no version 7 \(published: 1, 2, 3\)"):
        store.resolve("churn", pinned=7)


def test_a_pin_looked_up_by_a_request_overlaps_the_listing(
    store: ModelStore, binary_model: Any
) -> None:
    """The intake's HEAD (for a pin) and LIST (for versions) share one round trip."""
    for _ in range(2):
        store.publish("churn", binary_model.model_to_string().encode(), "m")
    listing_seen = threading.Event()

    def pin() -> int | None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not listing_seen.is_set():
            if any(t.name.startswith("model-versions") for t in threading.enumerate()):
                listing_seen.set()
            time.sleep(0.001)
        return 1

    assert store.resolve("churn", pin).version == 1
    assert listing_seen.is_set()
    assert store.resolve("churn", lambda: None).version == 2
    with pytest.raises(UnknownModel, match=r"no version 9"):
        store.resolve("churn", lambda: 9)


def test_an_unknown_model_says_how_to_publish_one(store: ModelStore) -> None:
    with pytest.raises(UnknownModel, match="pipeline model publish FILE --name fraud"):
        store.resolve("fraud")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"name,age\n1,2\n", id="csv"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00", id="binary"),
        pytest.param(b"tree\nversion=v4\nnum_class=1\n", id="truncated-model"),
    ],
)
def test_a_file_that_is_not_a_model_is_refused(store: ModelStore, data: bytes) -> None:
    with pytest.raises(InvalidModel, match=r"m\.bin"):
        store.publish("churn", data, "m.bin")
    assert store.versions("churn") == []


def test_a_worker_loads_each_version_once(store: ModelStore, binary_model: Any) -> None:
    store.publish("churn", binary_model.model_to_string().encode(), "m")
    cache = ModelCache(store, engine="lightgbm")

    first = cache.get(ModelRef(name="churn", version=1))
    again = cache.get(ModelRef(name="churn", version=1))

    assert first is again
    assert cache.loads == 1


def test_listing_a_models_versions_lists_once_and_reads_each_once(
    store: ModelStore, binary_model: Any
) -> None:
    for _ in range(4):
        store.publish("churn", binary_model.model_to_string().encode(), "m")
    calls: list[str] = []
    store._s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))

    records = store.records("churn")

    assert [r.version for r in records] == [1, 2, 3, 4]
    assert calls.count("ListObjectsV2") == 1
    assert calls.count("GetObject") == 4
