import pytest

from pipeline import naming
from pipeline.errors import UnroutableKey
from pipeline.messages import ModelRef, ObjectRef

OBJ = ObjectRef(bucket="in", key="churn/a.csv", etag="e1", size=10)
MODEL = ModelRef(name="churn", version=3)


@pytest.mark.parametrize(
    ("key", "model"),
    [
        pytest.param("churn/a.csv", "churn", id="simple"),
        pytest.param("churn/2026/01/a b.csv", "churn", id="nested"),
        pytest.param("fraud_v2/x.parquet", "fraud_v2", id="underscore"),
    ],
)
def test_the_first_segment_names_the_model(key: str, model: str) -> None:
    assert naming.model_name_for(key) == model


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        pytest.param("a.csv", "does not name a model", id="no-prefix"),
        pytest.param("churn/", "does not name a model", id="folder-only"),
        pytest.param("Churn/a.csv", "not a model name", id="uppercase"),
        pytest.param("-x/a.csv", "not a model name", id="leading-dash"),
        pytest.param("/a.csv", "not a model name", id="empty-segment"),
    ],
)
def test_keys_that_name_no_model(key: str, reason: str) -> None:
    with pytest.raises(UnroutableKey, match=reason):
        naming.model_name_for(key)


def test_job_id_is_deterministic() -> None:
    assert naming.job_id(OBJ, MODEL) == naming.job_id(OBJ.model_copy(), MODEL.model_copy())
    assert len(naming.job_id(OBJ, MODEL)) == 32


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"obj": OBJ.model_copy(update={"bucket": "other"})}, id="bucket"),
        pytest.param({"obj": OBJ.model_copy(update={"key": "churn/b.csv"})}, id="key"),
        pytest.param({"obj": OBJ.model_copy(update={"etag": "e2"})}, id="etag"),
        pytest.param({"model": ModelRef(name="churn", version=4)}, id="model-version"),
        pytest.param({"model": None}, id="no-model"),
    ],
)
def test_job_id_changes_with_what_decides_the_result(change: dict[str, object]) -> None:
    args = {"obj": OBJ, "model": MODEL, **change}
    assert naming.job_id(args["obj"], args["model"]) != naming.job_id(OBJ, MODEL)  # type: ignore[arg-type]


def test_job_id_ignores_the_size_the_event_reported() -> None:
    assert naming.job_id(OBJ.model_copy(update={"size": 99}), MODEL) == naming.job_id(OBJ, MODEL)


def test_output_key_puts_the_job_beside_the_input() -> None:
    assert naming.output_key("churn/2026/jan", "J", ".csv") == "churn/2026/jan/J.csv"


def test_a_key_whose_output_key_would_be_too_long_for_s3_is_refused() -> None:
    longest = "churn/" + "k" * (naming.MAX_INPUT_KEY_BYTES - len("churn/"))
    too_long = longest + "k"

    assert naming.model_name_for(longest) == "churn"
    assert len(naming.output_key(longest, "j" * 32, ".jsonl.gz").encode()) <= 1024
    with pytest.raises(UnroutableKey, match="keep input keys to 982 bytes"):
        naming.model_name_for(too_long)
