"""A forest as the SHAP kernel reads it: flat arrays of splits, leaves and their paths.

Each leaf's path is reduced to its distinct features (an *entry* each): the
share ``z`` of training rows that follows the path through that feature's
splits (the product over them, from LightGBM's ``internal_count`` and
``leaf_count``, as its TreeSHAP takes them), and the splits with the way the
path goes at each. Per entry, the quadrature's row-independent factors are
kept too (see ``shap_kernel``), so the kernel divides nothing per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.scoring.engine.forest import Forest, Tree, Unsupported

#: The kernel's tables, in the order of the pointer array it takes.
TABLES = (
    ("node_feature", np.int32),
    ("node_threshold", np.float64),
    #: LightGBM's decision_type low bits: 1 categorical, 2 default left, (>>2)&3 missing type.
    ("node_type", np.int32),
    ("node_left", np.int32),
    ("node_right", np.int32),
    ("node_cat_begin", np.int32),
    ("node_cat_words", np.int32),
    ("cat_words", np.uint32),
    ("tree_node_begin", np.int32),
    ("tree_node_count", np.int32),
    ("tree_leaf_begin", np.int32),
    ("tree_leaf_count", np.int32),
    ("tree_class", np.int32),
    ("leaf_value", np.float64),
    ("leaf_entry_begin", np.int32),
    ("leaf_entry_count", np.int32),
    ("entry_feature", np.int32),
    ("entry_zero", np.float64),
    ("entry_cond_begin", np.int32),
    ("entry_cond_count", np.int32),
    ("entry_q_begin", np.int32),
    #: Per entry and quadrature point t: z + (1 - z) t (its factor when hot), and w / that.
    ("entry_a", np.float64),
    ("entry_m", np.float64),
    ("cond_node", np.int32),
    ("cond_left", np.int32),
    #: Gauss-Legendre on [0, 1], q points at offset q(q-1)/2: 1 - t, and w / (1 - t).
    ("gauss_s", np.float64),
    ("gauss_cw", np.float64),
)

Path = dict[int, tuple[float, list[tuple[int, bool]]]]


@dataclass(frozen=True)
class Tables:
    arrays: dict[str, npt.NDArray[Any]]
    trees: int
    num_class: int
    num_features: int
    #: The widest path (distinct features) and the most splits in one tree.
    max_entries: int
    max_nodes: int
    #: Each class's expected value (the bias column): the trees' weighted leaf means.
    bias: npt.NDArray[np.float64]


@dataclass
class _Columns:
    lists: dict[str, list[Any]] = field(default_factory=lambda: {n: [] for n, _ in TABLES})
    max_entries: int = 0

    def __getitem__(self, name: str) -> list[Any]:
        return self.lists[name]


def tables(forest: Forest, trees: int | None = None) -> Tables:
    """The kernel's view of the first ``trees`` trees; ``Unsupported`` without row counts."""
    chosen = forest.trees[: len(forest.trees) if trees is None else trees]
    cols = _Columns()
    bias = np.zeros(forest.num_class)
    for index, tree in enumerate(chosen):
        k = index % forest.num_class
        cols["tree_node_begin"].append(len(cols["node_feature"]))
        cols["tree_node_count"].append(len(tree.nodes))
        cols["tree_leaf_begin"].append(len(cols["leaf_value"]))
        cols["tree_leaf_count"].append(len(tree.leaves))
        cols["tree_class"].append(k)
        if not tree.nodes:
            bias[k] += tree.leaves[0]
            _add_leaf(cols, tree.leaves[0], {})
            continue
        if len(tree.node_counts) != len(tree.nodes) or len(tree.leaf_counts) != len(tree.leaves):
            raise Unsupported(f"tree {index} has no row counts (internal_count, leaf_count)")
        _add_nodes(cols, tree)
        total = tree.node_counts[0]
        bias[k] += sum(c / total * v for c, v in zip(tree.leaf_counts, tree.leaves, strict=True))
        for value, path in zip(tree.leaves, _paths(tree), strict=True):
            _add_leaf(cols, value, path)
    for q in range(1, (cols.max_entries + 1) // 2 + 1):
        t, w = _gauss(q)
        cols["gauss_s"].extend(1.0 - t)
        cols["gauss_cw"].extend(w / (1.0 - t))
    arrays = {name: np.ascontiguousarray(cols[name] or [0], dtype=dtype) for name, dtype in TABLES}
    return Tables(
        arrays=arrays,
        trees=len(chosen),
        num_class=forest.num_class,
        num_features=forest.num_features,
        max_entries=cols.max_entries,
        max_nodes=max((len(tree.nodes) for tree in chosen), default=0),
        bias=bias,
    )


def _add_nodes(cols: _Columns, tree: Tree) -> None:
    for node in tree.nodes:
        cols["node_feature"].append(node.feature)
        cols["node_threshold"].append(0.0 if node.categorical else node.threshold)
        cols["node_type"].append(node.decision_type & 0xF)
        cols["node_left"].append(node.left)
        cols["node_right"].append(node.right)
        cols["node_cat_begin"].append(len(cols["cat_words"]))
        cols["node_cat_words"].append(len(node.categories))
        cols["cat_words"].extend(w & 0xFFFFFFFF for w in node.categories)


def _add_leaf(cols: _Columns, value: float, path: Path) -> None:
    cols["leaf_value"].append(value)
    cols["leaf_entry_begin"].append(len(cols["entry_feature"]))
    cols["leaf_entry_count"].append(len(path))
    cols.max_entries = max(cols.max_entries, len(path))
    t, w = _gauss((len(path) + 1) // 2)
    for feature, (zero, conditions) in path.items():
        cols["entry_feature"].append(feature)
        cols["entry_zero"].append(zero)
        cols["entry_cond_begin"].append(len(cols["cond_node"]))
        cols["entry_cond_count"].append(len(conditions))
        cols["entry_q_begin"].append(len(cols["entry_a"]))
        hot = zero + (1.0 - zero) * t
        cols["entry_a"].extend(hot.tolist())
        cols["entry_m"].extend((w / hot).tolist())
        for node, left in conditions:
            cols["cond_node"].append(node)
            cols["cond_left"].append(int(left))


@cache
def _gauss(points: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Gauss-Legendre points and weights on [0, 1]: exact for degree < 2 * points."""
    t, w = np.polynomial.legendre.leggauss(points)
    return (t + 1.0) / 2.0, w / 2.0


def _paths(tree: Tree) -> list[Path]:
    """Per leaf: each distinct feature on its path -> (z, the splits and ways taken)."""
    found: list[Path] = [{} for _ in tree.leaves]

    def count(child: int) -> float:
        return float(tree.node_counts[child] if child >= 0 else tree.leaf_counts[~child])

    stack: list[tuple[int, Path]] = [(0, {})]
    while stack:
        index, path = stack.pop()
        node = tree.nodes[index]
        for child, left in ((node.left, True), (node.right, False)):
            zero, conditions = path.get(node.feature, (1.0, []))
            share = count(child) / count(index) if count(index) else 0.0
            extended = {**path, node.feature: (zero * share, [*conditions, (index, left)])}
            if child >= 0:
                stack.append((child, extended))
            else:
                found[~child] = extended
    return found
