"""Compile jobs, and putting their output to use only after it proves exact.

Publishing a model sends a ``compile`` task; the worker that takes it parses
the text, generates and compiles the forest for this architecture's baseline
CPU, runs the gate against ``Booster.predict`` and stores the object file with
an ``EngineRecord`` (or a record of why the model stays on LightGBM). A worker
loading a model looks for that record: compiled, it downloads the object once,
runs the gate again in its own process (a wrong or damaged artifact is caught
here and recorded as refused), and only then scores with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from pipeline.messages import ModelRef, utc_now
from pipeline.model_store import EngineRecord, ModelStore
from pipeline.scoring import compiler, forest, gate
from pipeline.scoring.model import LoadedModel
from pipeline.scoring.native import NativeForest

log = logging.getLogger(__name__)


def compile_version(ref: ModelRef, store: ModelStore) -> EngineRecord:
    """Compile a published version for this architecture, unless that was done already."""
    target = compiler.host_target()
    if target is None:
        raise RuntimeError("no compile target is known for this machine's architecture")
    version = store.record(ref)
    existing = store.engine(version.sha256, compiler.compiler_id(), target.name)
    if existing is not None:
        return existing
    model = LoadedModel.from_text(ref, store.model_text(ref))
    started = time.monotonic()
    artifact: bytes | None = None
    try:
        parsed = forest.parse(model.text)
        artifact = compiler.compile_object(parsed, target)
        verdict = gate.verify(
            NativeForest(artifact, parsed.num_class, parsed.num_features), model.booster, parsed
        )
        status, reason = ("compiled" if verdict.passed else "refused"), verdict.reason
    except forest.Unsupported as exc:
        status, reason = "refused", str(exc)
    record = EngineRecord(
        sha256=version.sha256,
        compiler=compiler.compiler_id(),
        target=target.name,
        status=status,
        reason=reason,
        compile_seconds=round(time.monotonic() - started, 3),
        created_at=utc_now(),
    )
    store.save_engine(record, artifact if status == "compiled" else None)
    log.info("model %s v%d: %s (%s)", ref.name, ref.version, status, reason)
    return record


def record_failure(ref: ModelRef, store: ModelStore, exc: Exception) -> EngineRecord:
    """Record that compiling failed, so the model stays on LightGBM with the reason."""
    target = compiler.host_target()
    record = EngineRecord(
        sha256=store.record(ref).sha256,
        compiler=compiler.compiler_id(),
        target=target.name if target else "unknown",
        status="refused",
        reason=f"compiling failed: {type(exc).__name__}: {exc}",
        created_at=utc_now(),
    )
    store.save_engine(record, None)
    return record


def attach(model: LoadedModel, store: ModelStore) -> tuple[LoadedModel, bool]:
    """``model`` on its compiled forest if one exists and passes here; and whether one may come."""
    target = compiler.host_target()
    if target is None:
        return replace(model, engine_reason="no compile target for this architecture"), False
    record = store.engine(model.sha256, compiler.compiler_id(), target.name)
    if record is None:
        return replace(model, engine_reason="compile pending"), True
    if record.status != "compiled":
        return replace(model, engine_reason=record.reason), False
    try:
        parsed = forest.parse(model.text)
        native = NativeForest(store.artifact(record), parsed.num_class, parsed.num_features)
        verdict = gate.verify(native, model.booster, parsed)
    except (forest.Unsupported, ValueError, RuntimeError) as exc:
        verdict = gate.Verdict(False, 0, float("inf"), f"cannot be loaded: {exc}")
    if not verdict.passed:
        reason = f"the compiled predictor failed the gate on load: {verdict.reason}"
        log.error("model %s v%d: %s", model.ref.name, model.ref.version, reason)
        store.save_engine(record.model_copy(update={"status": "refused", "reason": reason}), None)
        return replace(model, engine_reason=reason), False
    return replace(model, compiled=native, engine_reason=record.reason), False
