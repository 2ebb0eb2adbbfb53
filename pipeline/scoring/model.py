"""LightGBM models: validating a file at publish time, loading it once per worker.

A worker keeps every model version it has loaded, keyed by (name, version):
versions are immutable, so a loaded one is never reloaded.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from pipeline.errors import InvalidModel
from pipeline.messages import ModelRef, utc_now
from pipeline.model_store import ModelInfo, ModelStore, ModelVersion
from pipeline.scoring.features import Feature

PREDICTION = "prediction"


def load_booster(text: str, source: str) -> lgb.Booster:
    """A Booster from LightGBM's text format; anything else is ``InvalidModel``."""
    if not text.lstrip().startswith("tree"):
        raise InvalidModel(f"{source} is not a LightGBM text model (it must start with 'tree')")
    try:
        return lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise InvalidModel(f"{source} is not a valid LightGBM model: {exc}") from exc


def describe(booster: lgb.Booster) -> ModelInfo:
    dump: dict[str, Any] = booster.dump_model(num_iteration=0)
    names: list[str] = booster.feature_name()
    categorical = set(_categorical_indices(booster))
    return ModelInfo(
        feature_names=names,
        feature_types=[
            "categorical" if i in categorical else "numerical" for i in range(len(names))
        ],
        objective=str(dump.get("objective", "")).split(" ")[0],
        num_class=int(dump.get("num_class", 1)),
        num_trees=booster.num_trees(),
    )


def _categorical_indices(booster: lgb.Booster) -> list[int]:
    text: str = booster.model_to_string(num_iteration=0)
    for line in text.splitlines():
        if line.startswith("[categorical_feature: "):
            value = line.removeprefix("[categorical_feature: ").rstrip("]").strip()
            return [int(i) for i in value.split(",") if i.strip()]
    return []


def features_of(booster: lgb.Booster) -> tuple[Feature, ...]:
    """The model's features, with training categories where it has pandas categoricals.

    ``pandas_categorical`` lists the categories of the categorical columns in
    column order, which is the order of their feature indices.
    """
    names: list[str] = booster.feature_name()
    pandas_categories = booster.pandas_categorical or []
    indices = sorted(_categorical_indices(booster))
    categories: dict[int, tuple[Any, ...]] = {}
    if pandas_categories and len(pandas_categories) == len(indices):
        categories = {i: tuple(c) for i, c in zip(indices, pandas_categories, strict=True)}
    return tuple(Feature(name, categories.get(i)) for i, name in enumerate(names))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    booster: lgb.Booster
    features: tuple[Feature, ...]
    num_outputs: int

    @classmethod
    def from_text(cls, ref: ModelRef, text: str) -> LoadedModel:
        booster = load_booster(text, f"model {ref.name!r} version {ref.version}")
        return cls(
            ref=ref,
            booster=booster,
            features=features_of(booster),
            num_outputs=booster.num_model_per_iteration(),
        )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """``prediction``, or ``prediction_<k>`` per class for multiclass models."""
        if self.num_outputs == 1:
            return (PREDICTION,)
        return tuple(f"{PREDICTION}_{k}" for k in range(self.num_outputs))

    def predict(
        self, features: npt.NDArray[np.float64], threads: int = 0
    ) -> npt.NDArray[np.float64]:
        """Predictions as a (rows, outputs) array."""
        params: dict[str, Any] = {"num_threads": threads} if threads else {}
        result = np.asarray(self.booster.predict(features, **params), dtype=np.float64)
        return result.reshape(len(features), self.num_outputs)


class ModelCache:
    """Models loaded in this process, by (name, version)."""

    def __init__(self, fetch: Callable[[ModelRef], str]) -> None:
        self._fetch = fetch
        self._models: dict[ModelRef, LoadedModel] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, ref: ModelRef) -> LoadedModel:
        with self._lock:
            model = self._models.get(ref)
            if model is None:
                model = self._models[ref] = LoadedModel.from_text(ref, self._fetch(ref))
                self.loads += 1
            return model


def publish_model(store: ModelStore, name: str, data: bytes, source: str) -> ModelVersion:
    """Validate a LightGBM text model and store it as the next version of ``name``."""
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise InvalidModel(f"{source} is not a LightGBM text model (not UTF-8 text)") from exc
    booster = load_booster(text, source)
    return store.publish(name, data, describe(booster), sha256_hex(data), utc_now())
