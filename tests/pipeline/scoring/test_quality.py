"""Quality reports: counted in the scoring pass, merged across shards, judged by policy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.client.api import Client
from pipeline.messages import ModelRef
from pipeline.quality import PSI_FLOOR, QualityPolicy, findings, psi
from pipeline.scoring.model import LoadedModel
from pipeline.scoring.quality import QualityCounter, baseline_of
from tests.conftest import submit, unique

FEATURES = ["age", "income", "score", "balance"]


def frame(n: int, seed: int, shift: float = 0.0, missing: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(n, 4)), 4)
    x[:, 0] += shift
    x[rng.random(n) < missing, 1] = np.nan
    return x


def csv_bytes(x: np.ndarray) -> bytes:
    lines = ["id," + ",".join(FEATURES)]
    for i, r in enumerate(x):
        lines.append(f"{i}," + ",".join("" if np.isnan(v) else repr(float(v)) for v in r))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training sample: the data the model saw, as Parquet."""
    path = tmp_path_factory.mktemp("baseline") / "train.parquet"
    x = frame(5000, 1)
    pq.write_table(pa.table({f: x[:, j] for j, f in enumerate(FEATURES)}), path)
    return path


def test_psi_is_zero_for_the_same_shares_and_floors_empty_bins() -> None:
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(
        (0.5 - 0.9) * np.log(0.5 / 0.9) + (0.5 - 0.1) * np.log(0.5 / 0.1)
    )
    assert psi([0.0, 1.0], [0.5, 0.5]) == pytest.approx(
        (PSI_FLOOR - 0.5) * np.log(PSI_FLOOR / 0.5) + 0.5 * np.log(2.0)
    )


def test_counts_merge_across_shards_as_if_counted_whole(binary_model: Any, sample: Path) -> None:
    model = LoadedModel.from_text(ModelRef(name="m", version=1), binary_model.model_to_string())
    baseline = baseline_of(model, pq.ParquetFile(sample).iter_batches(), str(sample))
    x = frame(3000, 2, shift=1.5, missing=0.3)
    x[:10, 2] = 1e6  # above the training range
    batch = pa.record_batch({f: x[:, j] for j, f in enumerate(FEATURES)})

    whole = QualityCounter(model.features, baseline)
    whole.add_features(batch, np.asfortranarray(x))
    whole.add_predictions(model.predict(np.asfortranarray(x)))
    parts = [QualityCounter(model.features, baseline) for _ in range(3)]
    for part, rows in zip(parts, np.array_split(np.arange(3000), 3), strict=True):
        part.add_features(batch.take(pa.array(rows)), np.asfortranarray(x[rows]))
        part.add_predictions(model.predict(np.asfortranarray(x[rows])))
    merged = QualityCounter(model.features, baseline)
    for part in parts:
        merged.merge(json.loads(json.dumps(part.state())))

    one, other = whole.report("j", model), merged.report("j", model)
    assert one.features == other.features
    assert one.rows == other.rows == 3000
    assert one.prediction.mean == pytest.approx(other.prediction.mean)
    income = one.features["income"]
    assert income.missing == int(np.isnan(x[:, 1]).sum())
    assert one.features["score"].above_range == 10
    assert one.features["age"].psi > 0.25  # shifted by 1.5 standard deviations
    assert one.features["balance"].psi < 0.05
    expected = np.quantile(model.predict(np.asfortranarray(x))[:, 0], 0.5)
    assert abs(one.prediction.quantiles["0.5"] - expected) < 0.02
    warnings, broken = findings(one, QualityPolicy(max_psi=0.2, on_quality="fail"))
    assert any("feature 'age' drifted: PSI" in w for w in warnings)
    assert any("feature 'income' is missing in" in w for w in warnings)
    assert any("'age' has PSI" in b and "above --max-psi 0.2" in b for b in broken)


def test_a_drifted_file_is_reported_beside_its_output(
    scoring_stack: Client, binary_model: Any, sample: Path
) -> None:
    name = unique("drift").replace("-", "_")
    scoring_stack.publish_model(binary_model.model_to_string().encode(), name=name, baseline=sample)
    x = frame(4000, 3, shift=1.5, missing=0.3)

    note = submit(scoring_stack, f"{name}/drifted.csv", csv_bytes(x))
    steady = submit(scoring_stack, f"{name}/steady.csv", csv_bytes(frame(4000, 4)))

    assert note.status == "succeeded", note.error
    assert note.quality is not None
    assert note.quality.max_psi is not None
    assert note.quality.max_psi > 0.25
    assert (
        note.quality.report.key
        == note.output.key.rsplit("/", 1)[0] + f"/{note.job_id}.quality.json"
    )
    assert any(w.startswith("feature 'age' drifted: PSI") for w in note.quality.warnings)
    missing = f"{np.isnan(x[:, 1]).mean():.1%}"
    assert f"feature 'income' is missing in {missing} of rows (baseline 0.0%)" in (
        note.quality.warnings
    )
    report = json.loads(
        scoring_stack.s3.get_object(Bucket=note.quality.report.bucket, Key=note.quality.report.key)[
            "Body"
        ].read()
    )
    assert report["rows"] == 4000
    assert set(report["features"]) == set(FEATURES)
    assert report["features"]["income"]["missing"] == int(np.isnan(x[:, 1]).sum())
    assert set(report["features"]["age"]) >= {
        "missing",
        "below_range",
        "above_range",
        "unseen",
        "psi",
    }
    assert set(report["prediction"]["quantiles"]) >= {
        "0.01",
        "0.05",
        "0.25",
        "0.5",
        "0.75",
        "0.95",
        "0.99",
    }
    assert report["prediction"]["mean"] == pytest.approx(binary_model.predict(x).mean())
    assert report["prediction"]["psi"] > 0.0
    assert steady.quality is not None
    assert steady.quality.max_psi < 0.05
    assert steady.quality.warnings == []
    assert scoring_stack.report(note.job_id).features["age"].psi == report["features"]["age"]["psi"]


def test_without_a_baseline_psi_is_null_and_ranges_still_count(
    scoring_stack: Client, binary_model: Any
) -> None:
    x = frame(500, 5)
    x[:7, 0] = -1e9

    note = submit(scoring_stack, f"churn/{unique('nobase')}.csv", csv_bytes(x))

    assert note.quality is not None
    assert note.quality.max_psi is None
    report = scoring_stack.report(note.job_id)
    low = binary_model.dump_model()["feature_infos"]["age"]["min_value"]
    assert report.features["age"].below_range == int((x[:, 0] < low).sum())
    assert report.features["age"].below_range >= 7
    assert report.features["age"].psi is None
    assert report.prediction.psi is None


def test_a_file_past_the_policy_fails_with_its_report_and_no_output(
    scoring_stack: Client, binary_model: Any, sample: Path
) -> None:
    name = unique("strict").replace("-", "_")
    scoring_stack.publish_model(
        binary_model.model_to_string().encode(),
        name=name,
        baseline=sample,
        max_missing=0.2,
        on_quality="fail",
    )
    key = f"{name}/{unique('bad')}.csv"

    note = submit(scoring_stack, key, csv_bytes(frame(2000, 6, missing=0.5)))

    assert note.status == "failed"
    assert note.error is not None
    assert note.error.code == "quality"
    assert "feature 'income' is missing in" in note.error.message
    assert "above --max-missing 0.2" in note.error.message
    assert note.quality is not None
    report = scoring_stack.report(note.job_id)
    assert report.rows == 2000
    outputs = scoring_stack.s3.list_objects_v2(
        Bucket=scoring_stack.outputs["OutputBucketName"], Prefix=key.rsplit(".", 1)[0] + "/"
    )
    names = sorted(o["Key"].rsplit("/", 1)[1] for o in outputs.get("Contents", []))
    assert names == [f"{note.job_id}.quality.html", f"{note.job_id}.quality.json"]


def test_the_page_renders_in_a_browser_with_a_picture_per_feature(
    scoring_stack: Client, binary_model: Any, sample: Path, tmp_path: Path
) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs chromium (.ci/run): the page must be seen rendered")
        pytest.skip("no chromium here: apt-get install chromium")
    name = unique("page").replace("-", "_")
    scoring_stack.publish_model(binary_model.model_to_string().encode(), name=name, baseline=sample)
    note = submit(scoring_stack, f"{name}/f.csv", csv_bytes(frame(1000, 7, shift=1.0)))
    page = tmp_path / "quality.html"
    page.write_bytes(
        scoring_stack.s3.get_object(Bucket=note.quality.html.bucket, Key=note.quality.html.key)[
            "Body"
        ].read()
    )
    shot = tmp_path / "quality.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip

    assert "<table>" in dom
    assert dom.count("<svg") == len(FEATURES) + 1  # each feature, and the predictions
    assert "feature 'age' drifted" in dom
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG")
    assert len(png) > 20_000  # a page with text and bars, not a blank one
