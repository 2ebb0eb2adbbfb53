import threading
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
    store: ModelStore, binary_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake's HEAD (for a pin) and LIST (for versions) share one round trip,
    the listing on a thread kept for the process, not one started per file."""
    for _ in range(2):
        store.publish("churn", binary_model.model_to_string().encode(), "m")
    listed = threading.Event()
    listers: list[threading.Thread] = []
    routing = store.routing

    def listing(name: str) -> Any:
        listers.append(threading.current_thread())
        listed.set()
        return routing(name)

    monkeypatch.setattr(store, "routing", listing)

    def pin() -> int | None:
        assert listed.wait(5), "the listing did not start while the pin was read"
        return 1

    assert store.resolve("churn", pin).version == 1
    listed.clear()
    assert store.resolve("churn", pin).version == 1
    assert store.resolve("churn", lambda: None).version == 2
    with pytest.raises(UnknownModel, match=r"no version 9"):
        store.resolve("churn", lambda: 9)
    assert all(t is not threading.current_thread() for t in listers)
    assert all(t.name.startswith("model-versions") for t in listers)
    assert len(set(listers)) <= 2  # the pool's threads, reused, not one per file


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


def test_an_alias_chooses_the_version_and_moving_it_takes_effect_at_once(
    store: ModelStore, binary_model: Any
) -> None:
    for _ in range(3):
        store.publish("churn", binary_model.model_to_string().encode(), "m")
    assert store.resolve("churn") == ModelRef(name="churn", version=3)  # latest, no alias

    store.set_alias("churn", "champion", 1)
    store.set_alias("churn", "challenger", 3)

    assert store.resolve("churn") == ModelRef(name="churn", version=1, alias="champion")
    assert store.resolve("churn", "challenger") == ModelRef(
        name="churn", version=3, alias="challenger"
    )
    assert store.resolve("churn", 2) == ModelRef(name="churn", version=2)  # a pin wins
    store.set_alias("churn", "champion", 2)  # promote: the next file gets 2
    assert store.resolve("churn").version == 2
    assert store.routing("churn").aliases == {"challenger": 3, "champion": 2}
    assert store.delete_alias("churn", "champion") == 2
    assert store.resolve("churn") == ModelRef(name="churn", version=3)  # back to the latest
    with pytest.raises(UnknownModel, match=r"no alias 'champion' \(set: challenger -> 3\)"):
        store.resolve("churn", "champion")


def test_an_alias_is_checked_when_set(store: ModelStore, binary_model: Any) -> None:
    store.publish("churn", binary_model.model_to_string().encode(), "m")
    with pytest.raises(UnknownModel, match=r"no version 4 \(published: 1\)"):
        store.set_alias("churn", "champion", 4)
    with pytest.raises(ValueError, match="did you mean 'champion'"):
        store.set_alias("churn", "Champion", 1)
    with pytest.raises(ValueError, match="reads as a version"):
        store.set_alias("churn", "v2", 1)
    with pytest.raises(UnknownModel, match="no alias 'gone'"):
        store.delete_alias("churn", "gone")
    assert store.routing("churn").aliases == {}


def test_the_newest_setting_wins_even_from_a_lagging_clock_and_old_entries_are_pruned(
    store: ModelStore, binary_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(2):
        store.publish("churn", binary_model.model_to_string().encode(), "m")
    store.set_alias("churn", "champion", 2)
    from pipeline.stores import model_store

    # A setter whose clock is an hour behind still moves the alias.
    monkeypatch.setattr(model_store, "utc_now", lambda: datetime(2020, 1, 1, tzinfo=UTC))
    for version in [1, 2] * 12:
        store.set_alias("churn", "champion", version)

    assert store.resolve("churn").version == 2
    log = store.routing("churn").entries["aliases/champion"]
    assert len(log) <= 21


def test_the_shadow_is_a_version_or_follows_an_alias(store: ModelStore, binary_model: Any) -> None:
    for _ in range(3):
        store.publish("churn", binary_model.model_to_string().encode(), "m")
    assert store.route("churn").shadow is None

    store.set_shadow("churn", 2)
    assert store.route("churn").shadow == ModelRef(name="churn", version=2)
    assert store.route("churn", 2).shadow is None  # a version never shadows itself

    store.set_alias("churn", "challenger", 3)
    store.set_shadow("churn", "challenger")
    assert store.route("churn", 1).shadow == ModelRef(name="churn", version=3, alias="challenger")
    store.set_alias("churn", "challenger", 1)  # the shadow follows the alias
    assert store.route("churn", 2).shadow == ModelRef(name="churn", version=1, alias="challenger")
    with pytest.raises(ValueError, match="stop the shadow first"):
        store.delete_alias("churn", "challenger")

    store.set_shadow("churn", None)
    assert store.route("churn", 2).shadow is None
    assert store.versions("churn") == [1, 2, 3]
