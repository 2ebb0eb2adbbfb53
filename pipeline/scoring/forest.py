"""A LightGBM text model read as plain data: trees, nodes, leaves and the output transform.

The compiled engine generates code from this, and the exactness gate builds
its check rows from the split thresholds and categories found here. Parsing
the text ourselves (rather than ``dump_model``'s JSON) keeps every number as
LightGBM wrote it: thresholds and leaf values are printed with 17 significant
digits, so ``float()`` gives back the very doubles LightGBM predicts with.

What the engine cannot reproduce exactly is named in ``Unsupported``, and the
model stays on LightGBM with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def parse(text: str) -> Forest:
    """The forest in a LightGBM text model; ``Unsupported`` for what the engine cannot do."""
    header, _, body = text.partition("\nTree=")
    fields = _fields(header)
    if "average_output" in header.splitlines():
        raise Unsupported("random forest models (average_output) are not compiled")
    trees_text = ("Tree=" + body).split("end of trees")[0]
    trees = tuple(_tree(block) for block in trees_text.split("\nTree=") if block.strip())
    num_class = int(fields.get("num_tree_per_iteration", fields.get("num_class", "1")))
    objective = fields.get("objective", "")
    sigmoid = 1.0
    for option in objective.split(" ")[1:]:
        if option.startswith("sigmoid:"):
            sigmoid = float(option.removeprefix("sigmoid:"))
    forest = Forest(
        trees=trees,
        num_class=num_class,
        num_features=int(fields["max_feature_idx"]) + 1,
        objective=objective,
        sigmoid=sigmoid,
    )
    forest.transform  # noqa: B018 - refuse an unknown objective now, not at compile time
    if len(trees) % num_class:
        raise Unsupported(f"{len(trees)} trees do not fill whole iterations of {num_class}")
    return forest


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def _numbers(fields: dict[str, str], name: str) -> list[str]:
    value = fields.get(name, "")
    return value.split(" ") if value else []


def _tree(block: str) -> Tree:
    fields = _fields("Tree=" + block)
    if fields.get("is_linear", "0") != "0":
        raise Unsupported("linear trees (linear_tree=true) are not compiled")
    leaves = tuple(float(v) for v in _numbers(fields, "leaf_value"))
    num_leaves = int(fields["num_leaves"])
    if num_leaves == 1:
        return Tree(nodes=(), leaves=leaves[:1])
    features = [int(v) for v in _numbers(fields, "split_feature")]
    thresholds = [float(v) for v in _numbers(fields, "threshold")]
    decisions = [int(v) for v in _numbers(fields, "decision_type")]
    lefts = [int(v) for v in _numbers(fields, "left_child")]
    rights = [int(v) for v in _numbers(fields, "right_child")]
    boundaries = [int(v) for v in _numbers(fields, "cat_boundaries")]
    words = [int(v) for v in _numbers(fields, "cat_threshold")]
    nodes = []
    for i in range(num_leaves - 1):
        categories: tuple[int, ...] = ()
        if decisions[i] & 1:
            index = int(thresholds[i])
            categories = tuple(words[boundaries[index] : boundaries[index + 1]])
        nodes.append(
            Node(features[i], thresholds[i], decisions[i], lefts[i], rights[i], categories)
        )
    return Tree(nodes=tuple(nodes), leaves=leaves)
