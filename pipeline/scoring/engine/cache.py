"""The models a worker has loaded, by (name, version), each on the best engine it may use.

Versions are immutable, so a loaded one is never reloaded. A model whose
compile has not finished is scored with LightGBM, and the store is asked
again for its compiled forest every ``recheck_seconds``: no file waits for a
compile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from pipeline.messages import ModelRef
from pipeline.scoring.model import ENGINE_LIGHTGBM, LoadedModel
from pipeline.stores.model_store import ModelStore


class ModelCache:
    """Models loaded in this process, by (name, version), each on the best engine it may use.

    A model whose compile job has not finished is scored with LightGBM, and
    the store is asked again for its predictor every ``recheck_seconds``: no
    file waits for a compile.
    """

    def __init__(
        self,
        store: ModelStore,
        engine: str = "auto",
        recheck_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        compile_seconds: float = 60.0,
    ) -> None:
        self._store, self._engine = store, engine
        self._compile_seconds = compile_seconds
        self._recheck, self._clock = recheck_seconds, clock
        self._models: dict[ModelRef, tuple[LoadedModel, float | None]] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, ref: ModelRef) -> LoadedModel:
        ref = ref.bare  # whatever alias chose it, a version is loaded once
        with self._lock:
            entry = self._models.get(ref)
            if entry is None:
                model = LoadedModel.from_text(ref, self._store.model_text(ref))
                record = self._store.record(ref)
                baseline = self._store.baseline(ref) if record.baseline else None
                model = replace(model, baseline=baseline, policy=record.quality)
                self.loads += 1
            else:
                model, recheck_at = entry
                if recheck_at is None or self._clock() < recheck_at:
                    return model
            model, pending = self._choose_engine(model)
            self._models[ref] = (model, self._clock() + self._recheck if pending else None)
            return model

    def _choose_engine(self, model: LoadedModel) -> tuple[LoadedModel, bool]:
        """The model on its engine, and whether a compile may still come."""
        if self._engine == ENGINE_LIGHTGBM:
            return replace(model, engine_reason="PIPELINE_PREDICT_ENGINE=lightgbm"), False
        # llvmlite only when needed
        from pipeline.scoring.engine import compile_jobs, explainer  # noqa: PLC0415

        if model.explanations is None:
            model = replace(model, explanations=explainer.ForestExplanations(model))
        return compile_jobs.attach(model, self._store, self._compile_seconds)
