"""What a LightGBM text model says about itself, read without LightGBM.

Publishing a model is a client's job, and a client install has no LightGBM.
The text format carries everything a version records in its header (the
feature names, the objective, the classes) and enough to tell a whole model
from a truncated or foreign file: ``tree_sizes`` names every tree's block,
and the trees end with ``end of trees``. The worker loads the model with
LightGBM itself before scoring anything.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from pipeline.errors import InvalidModel


class ModelInfo(BaseModel):
    """What a model file says about itself, read from its text at publish time."""

    model_config = ConfigDict(frozen=True)

    feature_names: list[str]
    #: Per feature: "numerical" or "categorical".
    feature_types: list[str]
    objective: str
    num_class: int
    num_trees: int


_REQUIRED = ("num_class", "max_feature_idx", "objective", "feature_names", "tree_sizes")


def describe(data: bytes, source: str) -> ModelInfo:
    """The model's features and objective; ``InvalidModel`` if ``data`` is not a whole model."""
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise InvalidModel(f"{source} is not a LightGBM text model (not UTF-8 text)") from exc
    lines = text.splitlines()
    if not lines or lines[0].strip() != "tree":
        raise InvalidModel(f"{source} is not a LightGBM text model (it must start with 'tree')")
    header: dict[str, str] = {}
    for line in lines[1:]:
        if not line.strip() or line.startswith("Tree="):
            break
        key, _, value = line.partition("=")
        header[key.strip()] = value.strip()
    missing = [key for key in _REQUIRED if key not in header]
    if missing:
        raise InvalidModel(f"{source} is not a whole LightGBM model: no {', '.join(missing)}")
    names = header["feature_names"].split()
    trees = sum(1 for line in lines if line.startswith("Tree="))
    declared = len(header["tree_sizes"].split())
    if "end of trees" not in lines or trees != declared:
        raise InvalidModel(
            f"{source} is not a whole LightGBM model: {trees} of its {declared} trees "
            "found, or no 'end of trees' (a truncated file?)"
        )
    try:
        if int(header["max_feature_idx"]) + 1 != len(names):
            raise InvalidModel(f"{source}: feature_names does not match max_feature_idx")
        categorical = _categorical(lines, header)
        return ModelInfo(
            feature_names=names,
            feature_types=[
                "categorical" if i in categorical else "numerical" for i in range(len(names))
            ],
            objective=header["objective"].split(" ")[0],
            num_class=int(header["num_class"]),
            num_trees=trees,
        )
    except ValueError as exc:
        raise InvalidModel(f"{source} is not a valid LightGBM model: {exc}") from exc


def _categorical(lines: list[str], header: dict[str, str]) -> set[int]:
    """The categorical feature indices: from the training parameters, as LightGBM wrote them,
    else from ``feature_infos`` (a categorical feature lists its categories, not a range)."""
    for line in lines:
        if line.startswith("[categorical_feature: "):
            value = line.removeprefix("[categorical_feature: ").rstrip("]").strip()
            return {int(i) for i in value.split(",") if i.strip()}
    infos = header.get("feature_infos", "").split()
    return {i for i, info in enumerate(infos) if info != "none" and not info.startswith("[")}
