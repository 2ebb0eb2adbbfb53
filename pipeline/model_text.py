"""What a LightGBM text model says about itself, read and checked without LightGBM.

Publishing a model is a client's job, and a client install has no LightGBM.
The text format carries everything a version records in its header (the
feature names, the objective, the classes) and enough to tell a whole model
from a truncated, foreign or hand-broken file. LightGBM trusts its input: a
``tree_sizes`` entry that does not match its block aborts the process that
loads it, and a child index that loops back makes prediction run for ever.
So every tree is checked here, the way LightGBM will read it, before a
version is stored or a worker loads it.

A model trained on a pandas DataFrame also says which categories its
``category`` columns had (``pandas_categorical``), but not which features
those columns were: LightGBM learns that from the DataFrame's dtypes at
predict time. ``pandas_categories`` works it out from the text (below).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline.errors import InvalidModel

#: A category value as pandas keeps it: the JSON LightGBM writes holds these kinds.
Category = str | int | float | bool


class ModelInfo(BaseModel):
    """What a model file says about itself, read from its text at publish time."""

    model_config = ConfigDict(frozen=True)

    feature_names: list[str]
    #: Per feature: "numerical" or "categorical".
    feature_types: list[str]
    objective: str
    num_class: int
    num_trees: int
    #: The training categories of each feature that was a pandas ``category``
    #: column, by feature name (ordered ones included: LightGBM splits on their codes).
    pandas_categories: dict[str, list[Category]] = {}


_REQUIRED = ("num_class", "max_feature_idx", "objective", "feature_names", "tree_sizes")
#: A number as LightGBM's parser reads it whole; Python's ``float`` also takes
#: ``0_5`` or `` 1``, which LightGBM reads differently.
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|nan)", re.IGNORECASE)
_INTEGER = re.compile(r"-?\d+")
_TREE_ARRAYS = ("split_feature", "threshold", "decision_type", "left_child", "right_child")
_SHOWN_NAMES = 10


@dataclass(frozen=True)
class TextTree:
    """One tree's arrays, as LightGBM reads them (checked: every node and leaf reached once)."""

    num_leaves: int
    split_feature: tuple[int, ...]
    threshold: tuple[float, ...]
    decision_type: tuple[int, ...]
    left_child: tuple[int, ...]
    right_child: tuple[int, ...]
    leaf_value: tuple[float, ...]
    cat_boundaries: tuple[int, ...]
    cat_threshold: tuple[int, ...]
    is_linear: bool
    #: Training rows through each split and into each leaf (SHAP values weigh paths by
    #: them); empty where the text leaves them out.
    internal_count: tuple[float, ...] = ()
    leaf_count: tuple[float, ...] = ()


@dataclass(frozen=True)
class ModelText:
    """A whole, checked LightGBM text model: its header fields and trees."""

    header: dict[str, str]
    trees: tuple[TextTree, ...]
    feature_names: tuple[str, ...]
    categorical: frozenset[int]
    #: ``pandas_categorical`` as written: one list per pandas category column.
    pandas_categorical: tuple[tuple[Category, ...], ...]

    @property
    def feature_infos(self) -> list[str]:
        return self.header.get("feature_infos", "").split()


def describe(data: bytes, source: str) -> ModelInfo:
    """The model's features and objective; ``InvalidModel`` if ``data`` is not a whole model."""
    model = parse(data, source)
    header, names = model.header, model.feature_names
    categories = pandas_categories(model, source)
    return ModelInfo(
        feature_names=list(names),
        feature_types=[
            "categorical" if i in model.categorical else "numerical" for i in range(len(names))
        ],
        objective=header["objective"].split(" ")[0],
        num_class=int(header["num_class"]),
        num_trees=len(model.trees),
        pandas_categories={names[i]: list(c) for i, c in categories.items()},
    )


def parse(data: bytes | str, source: str) -> ModelText:
    """The model's header and trees, every tree checked; ``InvalidModel`` says what is wrong."""
    if isinstance(data, bytes):
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            raise InvalidModel(f"{source} is not a LightGBM text model (not UTF-8 text)") from exc
    else:
        text = data
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
    names = tuple(header["feature_names"].split())
    for key in ("num_class", "max_feature_idx"):
        if not _INTEGER.fullmatch(header[key]):
            raise InvalidModel(f"{source}: {key}={header[key]!r} is not a whole number")
    if int(header["max_feature_idx"]) + 1 != len(names):
        raise InvalidModel(f"{source}: feature_names does not match max_feature_idx")
    trees = tuple(_trees(text, header, source, len(names)))
    return ModelText(
        header=header,
        trees=trees,
        feature_names=names,
        categorical=frozenset(_categorical(lines, header)),
        pandas_categorical=_pandas_categorical(lines, source),
    )


def _trees(text: str, header: dict[str, str], source: str, num_features: int) -> Iterator[TextTree]:
    """Each tree's block, found as LightGBM finds it: by the byte sizes in ``tree_sizes``."""
    sizes_text = header["tree_sizes"].split()
    if not all(_INTEGER.fullmatch(s) for s in sizes_text):
        raise InvalidModel(f"{source}: tree_sizes is not a list of whole numbers")
    sizes = [int(s) for s in sizes_text]
    start = text.find("\nTree=")
    end = text.find("\nend of trees")
    if start < 0 or end < 0 or end < start:
        trees = text.count("\nTree=")
        raise InvalidModel(
            f"{source} is not a whole LightGBM model: {trees} of its {len(sizes)} trees "
            "found, or no 'end of trees' (a truncated file?)"
        )
    region = text[start + 1 : end + 1].encode()
    if sum(sizes) != len(region):
        found = text[start:end].count("\nTree=")
        raise InvalidModel(
            f"{source} is not a whole LightGBM model: {found} of its {len(sizes)} trees found "
            f"in {len(region)} bytes where tree_sizes says {sum(sizes)} (a truncated or "
            "hand-edited file? LightGBM finds each tree by its size and aborts on a mismatch)"
        )
    offset = 0
    for index, size in enumerate(sizes):
        block = region[offset : offset + size].decode()
        offset += size
        if not block.startswith(f"Tree={index}\n"):
            raise InvalidModel(
                f"{source}: tree {index} is not where tree_sizes puts it (a hand-edited "
                "file? LightGBM finds each tree by its size)"
            )
        yield _tree(block, f"{source}: tree {index}", num_features)


def _tree(block: str, where: str, num_features: int) -> TextTree:
    fields: dict[str, str] = {}
    for line in block.splitlines()[1:]:
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or key != key.strip():
            raise InvalidModel(f"{where}: line {line[:60]!r} is not a 'key=value' line")
        fields[key] = value
    num_leaves = _whole(fields, "num_leaves", where)
    if not num_leaves or num_leaves[0] < 1:
        raise InvalidModel(f"{where}: num_leaves must be a whole number of at least 1")
    leaves = num_leaves[0]
    leaf_value = _reals(fields, "leaf_value", where)
    if len(leaf_value) != leaves:
        raise InvalidModel(f"{where}: {len(leaf_value)} leaf values for {leaves} leaves")
    bad = [i for i, v in enumerate(leaf_value) if not math.isfinite(v)]
    if bad:
        raise InvalidModel(f"{where}: leaf {bad[0]}'s value is {leaf_value[bad[0]]}, not a number")
    arrays = {
        name: _reals(fields, name, where) if name == "threshold" else _whole(fields, name, where)
        for name in _TREE_ARRAYS
    }
    for name, values in arrays.items():
        if len(values) != leaves - 1:
            raise InvalidModel(
                f"{where}: {name} has {len(values)} entries for {leaves - 1} split(s)"
            )
    boundaries = _whole(fields, "cat_boundaries", where)
    words = _whole(fields, "cat_threshold", where)
    tree = TextTree(
        num_leaves=leaves,
        split_feature=tuple(int(v) for v in arrays["split_feature"]),
        threshold=tuple(float(v) for v in arrays["threshold"]),
        decision_type=tuple(int(v) for v in arrays["decision_type"]),
        left_child=tuple(int(v) for v in arrays["left_child"]),
        right_child=tuple(int(v) for v in arrays["right_child"]),
        leaf_value=leaf_value,
        cat_boundaries=boundaries,
        cat_threshold=words,
        is_linear=fields.get("is_linear", "0").strip() not in {"", "0"},
        internal_count=_counts(fields, "internal_count", leaves - 1),
        leaf_count=_counts(fields, "leaf_count", leaves),
    )
    _check_structure(tree, where, num_features)
    return tree


def _check_structure(tree: TextTree, where: str, num_features: int) -> None:
    """Every split names a feature and children in range, and reaches each node once."""
    splits = tree.num_leaves - 1
    for i, feature in enumerate(tree.split_feature):
        if not 0 <= feature < num_features:
            raise InvalidModel(
                f"{where}: split {i} is on feature {feature}, but the model has "
                f"{num_features} features"
            )
        if tree.decision_type[i] & 1:
            _check_category_set(tree, i, where)
    if splits == 0:
        return
    seen_nodes, seen_leaves = [False] * splits, [False] * tree.num_leaves
    pending = [0]
    seen_nodes[0] = True
    while pending:
        node = pending.pop()
        for child in (tree.left_child[node], tree.right_child[node]):
            if child >= 0:
                if child >= splits or seen_nodes[child]:
                    raise InvalidModel(
                        f"{where}: split {node} leads to split {child}, which "
                        + ("does not exist" if child >= splits else "is reached twice (a loop)")
                    )
                seen_nodes[child] = True
                pending.append(child)
            else:
                leaf = ~child
                if leaf >= tree.num_leaves or seen_leaves[leaf]:
                    raise InvalidModel(
                        f"{where}: split {node} leads to leaf {leaf}, which "
                        + ("does not exist" if leaf >= tree.num_leaves else "is reached twice")
                    )
                seen_leaves[leaf] = True
    if not all(seen_nodes) or not all(seen_leaves):
        raise InvalidModel(f"{where}: some splits or leaves are reached from no path")


def _check_category_set(tree: TextTree, split: int, where: str) -> None:
    index = tree.threshold[split]
    if index != int(index) or not 0 <= index < len(tree.cat_boundaries) - 1:
        raise InvalidModel(f"{where}: categorical split {split} names no category set")
    low, high = tree.cat_boundaries[int(index)], tree.cat_boundaries[int(index) + 1]
    if not 0 <= low <= high <= len(tree.cat_threshold):
        raise InvalidModel(f"{where}: categorical split {split}'s category set is cut off")


def _values(fields: dict[str, str], name: str) -> list[str]:
    value = fields.get(name, "")
    return value.split(" ") if value.strip() else []


def _whole(fields: dict[str, str], name: str, where: str) -> tuple[int, ...]:
    values = _values(fields, name)
    for value in values:
        if not _INTEGER.fullmatch(value):
            raise InvalidModel(f"{where}: {name} holds {value[:40]!r}, not a whole number")
    return tuple(int(v) for v in values)


def _counts(fields: dict[str, str], name: str, size: int) -> tuple[float, ...]:
    """Row counts, or none if they are absent or not one non-negative number per node."""
    values = _values(fields, name)
    if len(values) != size or not all(_NUMBER.fullmatch(v) for v in values):
        return ()
    counts = tuple(float(v) for v in values)
    return counts if all(math.isfinite(c) and c >= 0 for c in counts) else ()


def _reals(fields: dict[str, str], name: str, where: str) -> tuple[float, ...]:
    values = _values(fields, name)
    for value in values:
        if not _NUMBER.fullmatch(value):
            raise InvalidModel(
                f"{where}: {name} holds {value[:40]!r}, which LightGBM does not read as that number"
            )
    return tuple(float(v) for v in values)


def _categorical(lines: list[str], header: dict[str, str]) -> set[int]:
    """The categorical feature indices: from the training parameters, as LightGBM wrote them,
    else from ``feature_infos`` (a categorical feature lists its categories, not a range)."""
    for line in lines:
        if line.startswith("[categorical_feature: "):
            value = line.removeprefix("[categorical_feature: ").rstrip("]").strip()
            return {int(i) for i in value.split(",") if i.strip()}
    infos = header.get("feature_infos", "").split()
    return {i for i, info in enumerate(infos) if info != "none" and not info.startswith("[")}


def _pandas_categorical(lines: list[str], source: str) -> tuple[tuple[Category, ...], ...]:
    for line in reversed(lines):
        if line.startswith("pandas_categorical:"):
            try:
                value: Any = json.loads(line.removeprefix("pandas_categorical:"))
            except ValueError as exc:
                raise InvalidModel(f"{source}: pandas_categorical is not JSON: {exc}") from exc
            if value is None:
                return ()
            if not isinstance(value, list) or not all(isinstance(c, list) for c in value):
                raise InvalidModel(f"{source}: pandas_categorical is not a list of lists")
            return tuple(tuple(c) for c in value)
    return ()


def pandas_categories(model: ModelText, source: str) -> dict[int, tuple[Category, ...]]:
    """Which feature each ``pandas_categorical`` list belongs to, by feature index.

    LightGBM lists the categories of every ``category`` column in column
    order, ordered ones too, but records as categorical only the columns it
    split by category (by default the unordered ones; or an explicit
    ``categorical_feature`` list, which may name plain integer columns as
    well). A column's codes must fit its categories: a categorical feature's
    values in ``feature_infos`` are codes below their count, a numerical
    one's range lies within ``[0, count - 1]``. Of the assignments that fit
    in column order, the one that covers the most categorical features wins,
    then the one whose numerical ranges span their categories exactly; if
    two still differ on a feature the trees use, the model is refused rather
    than scored by a guess.
    """
    lists = model.pandas_categorical
    if not lists:
        return {}
    infos = model.feature_infos
    count = len(model.feature_names)
    if len(infos) != count:
        infos = ["none"] * count
    fits = [[_fits(infos[f], f in model.categorical, len(c)) for f in range(count)] for c in lists]
    used = {f for f, info in enumerate(infos) if info != "none"}
    best = _best_assignments(fits, model.categorical, used)
    if not best:
        raise InvalidModel(
            f"{source}: pandas_categorical lists {len(lists)} category column(s), but the "
            "features' recorded values do not fit them in order (a model edited by hand?)"
        )
    if len(best) > 1:
        options = sorted(", ".join(model.feature_names[f] for f in chosen) for chosen in best)
        raise InvalidModel(
            f"{source}: the model was trained on {len(lists)} pandas category column(s), "
            "and its text does not say which features they were: any of "
            + "; ".join(f"[{o}]" for o in options)
            + ". LightGBM learns it from the DataFrame's dtypes, which a file does not "
            "have; train with such a column as plain integer codes (df[c].cat.codes), "
            "or with every one of its categories present, and publish again"
        )
    return {f: lists[p] for p, f in enumerate(best[0])}


def _best_assignments(
    fits: list[list[int]], categorical: frozenset[int], used: set[int]
) -> list[tuple[int, ...]]:
    """The best assignments of lists to features in order, up to two that differ on ``used``.

    A dynamic program over (list, feature), take or skip: trying every
    assignment grew combinatorially (forty 0/1 flags beside five category
    columns took 2 s, sixty beside six would not finish). An assignment's
    worth is the categorical features it covers, then the exact ranges, as
    one number; each state keeps at most two best assignments, told apart
    only by the features the trees use.
    """
    lists, count = len(fits), len(fits[0]) if fits else 0
    weight = lists + 1  # a covered categorical feature outweighs every exact range
    # after[f]: (worth, assignments) for lists p.. on features f..; None where impossible.
    State = tuple[int, list[tuple[int, ...]]] | None
    after: list[State] = [(0, [()])] * (count + 1)
    for p in reversed(range(lists)):
        row: list[State] = [None] * (count + 1)
        for f in reversed(range(count)):
            options: list[tuple[int, list[tuple[int, ...]]]] = []
            skip = row[f + 1]
            if skip is not None:
                options.append(skip)  # feature f holds no list
            rest = after[f + 1]
            if fits[p][f] and rest is not None:
                worth = (f in categorical) * weight + (fits[p][f] == 2) + rest[0]
                options.append((worth, [(f, *chosen) for chosen in rest[1]]))
            if options:
                top = max(worth for worth, _ in options)
                kept: dict[tuple[int, ...], tuple[int, ...]] = {}
                for worth, chosen_list in options:
                    for chosen in chosen_list if worth == top else ():
                        kept.setdefault(tuple(f if f in used else -1 for f in chosen), chosen)
                row[f] = (top, sorted(kept.values())[:2])
        after = row
    return after[0][1] if after[0] is not None else []


def _fits(info: str, categorical: bool, size: int) -> int:
    """0: codes of ``size`` categories cannot give this feature; 1: they can; 2: exactly."""
    if info == "none":
        return 1
    if categorical:
        if info.startswith("["):
            return 0
        codes = [int(v) for v in info.split(":") if _INTEGER.fullmatch(v)]
        return 1 if all(c < size for c in codes) else 0
    low_text, _, high_text = info.strip("[]").partition(":")
    if (
        not info.startswith("[")
        or not _NUMBER.fullmatch(low_text)
        or not _NUMBER.fullmatch(high_text)
    ):
        return 0
    low, high = float(low_text), float(high_text)
    if not (0 <= low <= high <= size - 1 and low.is_integer() and high.is_integer()):
        return 0
    return 2 if (low, high) == (0, size - 1) else 1
