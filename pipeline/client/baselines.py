"""A baseline from a sample of training data, made where the model is published.

The sample (CSV, Parquet or JSON lines, gzip too) is read by the same codecs
a worker reads files with, its features turned into numbers the same way,
and the model predicts on it with LightGBM: so publishing with a baseline
needs the ``worker`` (or ``local``) install, and says so if it is missing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pipeline.messages import ModelRef
from pipeline.quality import Baseline

if TYPE_CHECKING:
    import pyarrow as pa

#: Rows of the sample that make the baseline (a sample beyond it is read no further).
MAX_BASELINE_ROWS = 1_000_000


class _LocalFile:
    """A local file as a codec's ``ObjectSource``."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def row_groups(self) -> tuple[int, ...] | None:
        return None

    def stream(self) -> BinaryIO:
        return self._path.open("rb")

    def random_access(self) -> BinaryIO:
        return self._path.open("rb")

    def head(self, size: int) -> bytes:
        with self._path.open("rb") as file:
            return file.read(size)


def baseline_from_file(model_text: bytes, path: Path) -> Baseline:
    """The baseline of the model in ``model_text`` over the sample in ``path``."""
    if importlib.util.find_spec("lightgbm") is None:
        raise ValueError(
            "a baseline is made with LightGBM, which this install lacks: "
            "pip install 'lgbm-pipeline[worker]'"
        )
    from pipeline.scoring import formats  # noqa: PLC0415 - the worker's install
    from pipeline.scoring.model import LoadedModel  # noqa: PLC0415
    from pipeline.scoring.quality import baseline_of  # noqa: PLC0415

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    source = _LocalFile(path)
    fmt = formats.by_extension(path.name) or formats.detect(path.name, source.head(4096))
    model = LoadedModel.from_text(ModelRef(name="baseline", version=1), model_text.decode())
    reader = fmt.open(source, str(path), 65_536, features=model.feature_names)

    def batches() -> Iterator[pa.RecordBatch]:
        rows = 0
        for chunk in reader:
            yield chunk.batch
            rows += chunk.num_rows
            if rows >= MAX_BASELINE_ROWS:
                return

    return baseline_of(model, batches(), str(path))
