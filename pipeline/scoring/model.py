"""A LightGBM model loaded for scoring: its Booster, its features, and its engine.

A ``LoadedModel`` predicts with its compiled forest once one has passed the
exactness gate, else with ``Booster.predict``; which one is chosen, and the
models a worker keeps, are the engine's (``engine.cache``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from pipeline import model_text
from pipeline.errors import InvalidModel
from pipeline.messages import ModelRef
from pipeline.quality import Baseline, QualityPolicy
from pipeline.scoring.features import Feature


def load_booster(text: str, source: str) -> tuple[lgb.Booster, model_text.ModelText]:
    """A Booster from LightGBM's text format, and the text read; else ``InvalidModel``.

    The text is checked first: LightGBM aborts the process on a tree whose
    size is off, and loops for ever in a tree whose children loop back.
    """
    parsed = model_text.parse(text, source)
    try:
        return lgb.Booster(model_str=text), parsed
    except lgb.basic.LightGBMError as exc:
        raise InvalidModel(f"{source} is not a valid LightGBM model: {exc}") from exc


def features_of(parsed: model_text.ModelText, source: str) -> tuple[Feature, ...]:
    """The model's features, with training categories where they were pandas categoricals."""
    categories = model_text.pandas_categories(parsed, source)
    infos = parsed.feature_infos
    return tuple(
        Feature(name, categories.get(i), infos[i] if i < len(infos) else "none")
        for i, name in enumerate(parsed.feature_names)
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


ENGINE_LIGHTGBM = "lightgbm"
ENGINE_COMPILED = "compiled"


class Predictor(Protocol):
    #: "bitvector" finds exit leaves as well as scores; "branches" only scores.
    kernel: str

    def predict(
        self, features: npt.NDArray[np.float64], threads: int = 0, raw: bool = False
    ) -> npt.NDArray[np.float64]: ...

    def leaves(
        self, features: npt.NDArray[np.float64], num_trees: int, threads: int = 0
    ) -> npt.NDArray[np.int32]: ...


class Explanations(Protocol):
    """A faster exact source of SHAP values; None where it does not cover the model."""

    def contributions(
        self, features: npt.NDArray[np.float64], threads: int, num_iteration: int | None
    ) -> npt.NDArray[np.float64] | None: ...


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    booster: lgb.Booster
    features: tuple[Feature, ...]
    num_outputs: int
    sha256: str
    text: str = field(repr=False)
    #: The compiled forest that passed the gate in this process, if any.
    compiled: Predictor | None = None
    #: Why this engine: the gate's verdict, or why the model is on LightGBM.
    engine_reason: str = "not compiled"
    #: The compiled SHAP kernel for this model, if the engine allows it.
    explanations: Explanations | None = None
    #: What its files' quality reports compare with, and the limits on them.
    baseline: Baseline | None = None
    policy: QualityPolicy = field(default_factory=QualityPolicy)
    #: LightGBM's objective name (``binary``, ``multiclass``, ``regression``, ...).
    objective: str = ""

    @classmethod
    def from_text(cls, ref: ModelRef, text: str) -> LoadedModel:
        source = f"model {ref.name!r} version {ref.version}"
        booster, parsed = load_booster(text, source)
        return cls(
            ref=ref,
            booster=booster,
            features=features_of(parsed, source),
            num_outputs=booster.num_model_per_iteration(),
            sha256=sha256_hex(text.encode()),
            text=text,
            objective=parsed.header["objective"].split(" ")[0],
        )

    @property
    def written(self) -> str:
        """The model as LightGBM writes it back: what it predicts with, every tree included."""
        return str(self.booster.model_to_string(num_iteration=-1))

    @property
    def engine(self) -> str:
        return ENGINE_LIGHTGBM if self.compiled is None else ENGINE_COMPILED

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def iterations(self) -> int:
        return int(self.booster.current_iteration())

    def predict(
        self,
        features: npt.NDArray[np.float64],
        threads: int = 0,
        *,
        raw: bool = False,
        num_iteration: int | None = None,
    ) -> npt.NDArray[np.float64]:
        """Predictions (or raw scores) as a (rows, outputs) array, as ``Booster.predict`` gives.

        The compiled forest, if it passed, predicts with every iteration;
        fewer are LightGBM's.
        """
        if self.compiled is not None and self._every_iteration(num_iteration):
            return self.compiled.predict(features, threads, raw)
        result = self.booster.predict(
            features, raw_score=raw, **self._params(threads, num_iteration)
        )
        return np.asarray(result, dtype=np.float64).reshape(len(features), self.num_outputs)

    def leaves(
        self, features: npt.NDArray[np.float64], threads: int = 0, num_iteration: int | None = None
    ) -> npt.NDArray[np.int32]:
        """Each tree's exit leaf, (rows, trees): ``Booster.predict(pred_leaf=True)``.

        From the bitvector kernel where it passed its gate (which checks leaves too).
        """
        if (
            self.compiled is not None
            and self.compiled.kernel == "bitvector"
            and self._every_iteration(num_iteration)
        ):
            return self.compiled.leaves(features, self.iterations * self.num_outputs, threads)
        result = self.booster.predict(
            features, pred_leaf=True, **self._params(threads, num_iteration)
        )
        return np.asarray(result, dtype=np.int32).reshape(len(features), -1)

    def contributions(
        self, features: npt.NDArray[np.float64], threads: int = 0, num_iteration: int | None = None
    ) -> npt.NDArray[np.float64]:
        """SHAP values, (rows, outputs * (features + 1)): ``Booster.predict(pred_contrib=True)``.

        From the compiled kernel where it passed its gate for this model, else LightGBM's.
        """
        if self.explanations is not None:
            fast = self.explanations.contributions(features, threads, num_iteration)
            if fast is not None:
                return fast
        result = self.booster.predict(
            features, pred_contrib=True, **self._params(threads, num_iteration)
        )
        width = self.num_outputs * (len(self.features) + 1)
        return np.asarray(result, dtype=np.float64).reshape(len(features), width)

    def _every_iteration(self, num_iteration: int | None) -> bool:
        """Whether ``num_iteration`` asks for the whole model, which the compiled forest is."""
        return num_iteration is None or num_iteration >= self.iterations

    @staticmethod
    def _params(threads: int, num_iteration: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {"num_threads": threads} if threads else {}
        if num_iteration is not None:
            params["num_iteration"] = num_iteration
        return params
