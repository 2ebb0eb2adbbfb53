"""A LightGBM text model read as plain data: trees, nodes, leaves and the output transform.

The compiled engine generates code from this, and the exactness gate builds
its check rows from the split thresholds and categories found here. Reading
the text (``pipeline.model_text``, the one reader of it) rather than
``dump_model``'s JSON keeps every number as LightGBM wrote it: thresholds and
leaf values are printed with 17 significant digits, so ``float()`` gives back
the very doubles LightGBM predicts with.

What the engine cannot reproduce exactly is named in ``Unsupported``, and the
model stays on LightGBM with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pipeline import model_text

#: LightGBM's ``kZeroThreshold`` (1e-35f as a double): its predictor stores any
#: feature value with ``|x| <= kZeroThreshold`` as 0.0, and splits compare against that.
K_ZERO_THRESHOLD = 1.0000000180025095e-35

#: Objectives whose output transform the engine reproduces, by LightGBM's name.
IDENTITY_OBJECTIVES = frozenset(
    {
        "regression",
        "regression_l1",
        "huber",
        "fair",
        "quantile",
        "mape",
        "lambdarank",
        "rank_xendcg",
    }
)
EXP_OBJECTIVES = frozenset({"poisson", "gamma", "tweedie"})


class Unsupported(Exception):
    """The model uses something the compiled engine does not reproduce exactly."""


@dataclass(frozen=True)
class Node:
    feature: int
    threshold: float
    #: LightGBM's decision_type bits: 1 categorical, 2 default left, (>>2)&3 missing type.
    decision_type: int
    left: int  # >= 0: a node; < 0: the leaf ~left
    right: int
    #: For a categorical split: the bitset words of the categories that go left.
    categories: tuple[int, ...] = ()

    @property
    def categorical(self) -> bool:
        return bool(self.decision_type & 1)

    @property
    def default_left(self) -> bool:
        return bool(self.decision_type & 2)

    @property
    def missing_type(self) -> int:
        """0: none (NaN is read as 0.0), 1: zero, 2: NaN."""
        return (self.decision_type >> 2) & 3

    @cached_property
    def category_set(self) -> frozenset[int]:
        return frozenset(self.category_values())

    def category_values(self) -> list[int]:
        return [
            32 * word + bit
            for word, bits in enumerate(self.categories)
            for bit in range(32)
            if bits >> bit & 1
        ]


@dataclass(frozen=True)
class Tree:
    nodes: tuple[Node, ...]
    leaves: tuple[float, ...]
    #: Training rows through each node and into each leaf; empty if the text has none.
    node_counts: tuple[float, ...] = ()
    leaf_counts: tuple[float, ...] = ()


@dataclass(frozen=True)
class Forest:
    trees: tuple[Tree, ...]
    num_class: int
    num_features: int
    #: The objective's name and parameters, as in the model's ``objective=`` line.
    objective: str
    sigmoid: float

    @property
    def transform(self) -> str:
        """How raw scores become predictions: identity, sigmoid, softmax, exp or signed_square."""
        name, *options = self.objective.split(" ")
        if name in {"binary", "multiclassova", "cross_entropy"}:
            return "sigmoid"
        if name == "multiclass":
            return "softmax"
        if name in EXP_OBJECTIVES:
            return "exp"
        if name in IDENTITY_OBJECTIVES:
            return "signed_square" if "sqrt" in options else "identity"
        raise Unsupported(f"objective {self.objective!r} is not compiled")

    @cached_property
    def thresholds(self) -> dict[int, set[float]]:
        """Each feature's distinct numerical split thresholds (features with none absent)."""
        return self._split_values[0]

    @cached_property
    def categories(self) -> dict[int, set[int]]:
        """Each feature's categories that categorical splits name (features with none absent)."""
        return self._split_values[1]

    @cached_property
    def _split_values(self) -> tuple[dict[int, set[float]], dict[int, set[int]]]:
        thresholds: dict[int, set[float]] = {}
        categories: dict[int, set[int]] = {}
        for tree in self.trees:
            for node in tree.nodes:
                if node.categorical:
                    categories.setdefault(node.feature, set()).update(node.category_values())
                else:
                    thresholds.setdefault(node.feature, set()).add(node.threshold)
        return thresholds, categories


def parse(text: str) -> Forest:
    """The forest in a LightGBM text model; ``Unsupported`` for what the engine cannot do.

    Give it the text LightGBM writes back (``Booster.model_to_string``), not
    the bytes a user published: LightGBM reads some spellings differently
    from Python (``0_5``), and its own writing is the model it predicts with.
    """
    model = model_text.parse(text, "the model")
    header = model.header
    if "average_output" in text.partition("\nTree=")[0].splitlines():
        raise Unsupported("random forest models (average_output) are not compiled")
    trees = tuple(_tree(tree) for tree in model.trees)
    num_class = int(header.get("num_tree_per_iteration", header.get("num_class", "1")))
    objective = header.get("objective", "")
    sigmoid = 1.0
    for option in objective.split(" ")[1:]:
        if option.startswith("sigmoid:"):
            sigmoid = float(option.removeprefix("sigmoid:"))
    forest = Forest(
        trees=trees,
        num_class=num_class,
        num_features=len(model.feature_names),
        objective=objective,
        sigmoid=sigmoid,
    )
    forest.transform  # noqa: B018 - refuse an unknown objective now, not at compile time
    if len(trees) % num_class:
        raise Unsupported(f"{len(trees)} trees do not fill whole iterations of {num_class}")
    return forest


def _tree(tree: model_text.TextTree) -> Tree:
    if tree.is_linear:
        raise Unsupported("linear trees (linear_tree=true) are not compiled")
    if tree.num_leaves == 1:
        return Tree(nodes=(), leaves=tree.leaf_value[:1], leaf_counts=tree.leaf_count)
    nodes = []
    for i in range(tree.num_leaves - 1):
        categories: tuple[int, ...] = ()
        if tree.decision_type[i] & 1:
            index = int(tree.threshold[i])
            bounds = tree.cat_boundaries
            categories = tree.cat_threshold[bounds[index] : bounds[index + 1]]
        nodes.append(
            Node(
                tree.split_feature[i],
                tree.threshold[i],
                tree.decision_type[i],
                tree.left_child[i],
                tree.right_child[i],
                categories,
            )
        )
    return Tree(
        nodes=tuple(nodes),
        leaves=tree.leaf_value,
        node_counts=tree.internal_count,
        leaf_counts=tree.leaf_count,
    )
