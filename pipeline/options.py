"""What a scoring job writes out: carried columns, score kinds, threshold, iterations.

Options come in two layers, each key by key: a model version's defaults
(given at publish) and a file's own (its S3 user metadata, what ``aws s3 cp
--metadata`` sets). ``ScoreOptions`` holds one layer, with ``None`` for a key
it leaves to the layer below; ``InForce`` is what a job runs with, the
defaults filled in, and what its notification echoes.

Everything here is decided by the options and the model's description alone,
so the intake answers a bad option at once, before any worker reads the
file; what needs the file's columns is checked where they are known
(``pipeline.scoring.outputs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypedDict, Unpack

from pydantic import BaseModel, ConfigDict

from pipeline.errors import BadOption, names_list

#: S3 user-metadata keys (``x-amz-meta-<key>``) a file sets its options with.
COLUMNS = "columns"
DROP_COLUMNS = "drop-columns"
SCORES = "scores"
THRESHOLD = "threshold"
NUM_ITERATION = "num-iteration"
MAX_BAD_ROWS = "max-bad-rows"

PREDICTION = "prediction"
RAW_SCORE = "raw_score"
LABEL = "label"
LEAF = "leaf"
CONTRIB = "contrib"
REASONS = "reasons"
KINDS = (PREDICTION, RAW_SCORE, LABEL, LEAF, CONTRIB, f"{REASONS}:K")
DEFAULT_THRESHOLD = 0.5
#: Objectives whose prediction is a probability a threshold turns into a label.
BINARY_OBJECTIVES = frozenset({"binary"})
MULTICLASS_OBJECTIVES = frozenset({"multiclass", "multiclassova"})


class OptionArguments(TypedDict, total=False):
    """The options as keyword arguments (``Client.submit``, ``Client.publish_model``):
    Python values, or their metadata spelling."""

    columns: str | Iterable[str] | None
    drop_columns: str | Iterable[str] | None
    scores: str | Iterable[str] | None
    threshold: float | str | None
    num_iteration: int | str | None
    max_bad_rows: int | str | None


class ModelFacts(Protocol):
    """What the options are checked against: a published version's ``ModelInfo``."""

    @property
    def feature_names(self) -> list[str]: ...

    @property
    def objective(self) -> str: ...

    @property
    def num_class(self) -> int: ...

    @property
    def num_trees(self) -> int: ...


@dataclass(frozen=True)
class Kind:
    """One score kind: ``prediction``, ``raw_score``, ``label``, ``leaf``, ``contrib``,
    or ``reasons`` with its ``k``."""

    name: str
    k: int = 0

    def __str__(self) -> str:
        return f"{self.name}:{self.k}" if self.name == REASONS else self.name


def parse_kind(text: str, option: str = SCORES) -> Kind:
    name, colon, count = text.strip().partition(":")
    if name == REASONS and colon:
        if not count.strip().isdigit() or int(count) < 1:
            raise BadOption(
                f"option {option!r}: {text.strip()!r} needs a whole number of reasons from 1, "
                "as in reasons:3"
            )
        return Kind(REASONS, int(count))
    if name == REASONS:
        raise BadOption(f"option {option!r}: say how many reasons, as in reasons:3")
    if colon or name not in KINDS:
        raise BadOption(
            f"option {option!r}: unknown score kind {text.strip()!r}; the kinds are "
            + ", ".join(KINDS)
        )
    return Kind(name)


class InForce(BaseModel):
    """The options a job ran with, as its notification's ``output.options`` echoes them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Input columns carried into the output, in order; None: all of them.
    columns: list[str] | None = None
    drop_columns: list[str] = []
    scores: list[str] = [PREDICTION]
    threshold: float = DEFAULT_THRESHOLD
    #: Iterations scored with; None: all of the model's.
    num_iteration: int | None = None
    #: Rows with unreadable feature values set aside (listed, not scored) before the file
    #: fails instead; 0: the first such value fails it.
    max_bad_rows: int = 0

    @property
    def kinds(self) -> list[Kind]:
        return [parse_kind(s) for s in self.scores]

    def carried(self, available: Sequence[str], where: str) -> list[str]:
        """The input columns the output keeps, in order; ``BadOption`` for a column not there."""
        present = set(available)
        named = [*(self.columns or []), *self.drop_columns]
        lacking = [c for c in dict.fromkeys(named) if c not in present]
        if lacking:
            option = COLUMNS if lacking[0] in (self.columns or []) else DROP_COLUMNS
            raise BadOption(
                f"{where}: option {option!r} names {len(lacking)} column(s) the file does not "
                f"have: {names_list(lacking)} (it has {names_list(list(available))})"
            )
        kept = list(available) if self.columns is None else self.columns
        dropped = set(self.drop_columns)
        return [c for c in kept if c not in dropped]


class ScoreOptions(BaseModel):
    """One layer of options (a model's defaults, or a file's); ``None``: not set here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: list[str] | None = None
    drop_columns: list[str] | None = None
    scores: list[str] | None = None
    threshold: float | None = None
    num_iteration: int | None = None
    max_bad_rows: int | None = None

    @classmethod
    def of(cls, **given: Unpack[OptionArguments]) -> ScoreOptions:
        """Options from Python values or their metadata spelling; else ``BadOption``."""
        columns, drop_columns = given.get("columns"), given.get("drop_columns")
        scores, threshold = given.get("scores"), given.get("threshold")
        num_iteration, max_bad_rows = given.get("num_iteration"), given.get("max_bad_rows")
        return cls(
            columns=None if columns is None else _names(columns, COLUMNS),
            drop_columns=None if drop_columns is None else _names(drop_columns, DROP_COLUMNS),
            scores=None if scores is None else _scores(scores),
            threshold=None if threshold is None else _threshold(threshold),
            num_iteration=None if num_iteration is None else _iterations(num_iteration),
            max_bad_rows=None if max_bad_rows is None else _count(max_bad_rows),
        )

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ScoreOptions:
        """A file's options from its S3 user metadata (other keys are not ours and stay)."""
        get = metadata.get
        return cls.of(
            columns=get(COLUMNS),
            drop_columns=get(DROP_COLUMNS),
            scores=get(SCORES),
            threshold=get(THRESHOLD),
            num_iteration=get(NUM_ITERATION),
            max_bad_rows=get(MAX_BAD_ROWS),
        )

    def to_metadata(self) -> dict[str, str]:
        """The S3 user metadata that sets these options on an upload."""
        spelled = {
            COLUMNS: None if self.columns is None else ",".join(self.columns),
            DROP_COLUMNS: None if self.drop_columns is None else ",".join(self.drop_columns),
            SCORES: None if self.scores is None else ",".join(self.scores),
            THRESHOLD: None if self.threshold is None else repr(self.threshold),
            NUM_ITERATION: None if self.num_iteration is None else str(self.num_iteration),
            MAX_BAD_ROWS: None if self.max_bad_rows is None else str(self.max_bad_rows),
        }
        return {key: value for key, value in spelled.items() if value is not None}

    def over(self, defaults: ScoreOptions) -> ScoreOptions:
        """These options, with ``defaults`` for each key not set here."""
        mine = self.model_dump(exclude_none=True)
        return defaults.model_copy(update=mine)

    def in_force(self, model: ModelFacts) -> InForce:
        """The options a file of ``model`` runs with; ``BadOption`` if it cannot honour them."""
        options = InForce(**self.model_dump(exclude_none=True))
        check_for_model(options, model)
        return options


def check_for_model(options: InForce, model: ModelFacts) -> None:
    """Refuse what the model cannot do: too many iterations or reasons, a kind that does not fit."""
    iterations = model.num_trees // max(1, model.num_class)
    if options.num_iteration is not None and options.num_iteration > iterations:
        raise BadOption(
            f"option {NUM_ITERATION!r} is {options.num_iteration}; the model has "
            f"{iterations} iteration(s)"
        )
    for kind in options.kinds:
        if kind.name == LABEL and model.objective not in BINARY_OBJECTIVES | MULTICLASS_OBJECTIVES:
            raise BadOption(
                f"option {SCORES!r}: 'label' needs a binary or multiclass model; this one's "
                f"objective is {model.objective!r}"
            )
        if kind.name == REASONS:
            if model.num_class > 1:
                raise BadOption(
                    f"option {SCORES!r}: {kind} needs a model with one output; this one has "
                    f"{model.num_class} classes (ask for 'contrib' instead)"
                )
            if kind.k > len(model.feature_names):
                raise BadOption(
                    f"option {SCORES!r}: {kind} asks for more reasons than the model's "
                    f"{len(model.feature_names)} feature(s)"
                )


def _names(value: str | Iterable[str], option: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [item.strip() for item in items]
    if any(not name for name in names):
        raise BadOption(f"option {option!r}: {_shown(value)} has an empty column name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BadOption(f"option {option!r} names {names_list(repeated)} more than once")
    return names


def _scores(value: str | Iterable[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    if not [item for item in items if item.strip()]:
        raise BadOption(f"option {SCORES!r} is empty; the kinds are " + ", ".join(KINDS))
    kinds = [parse_kind(item) for item in items]
    names = [kind.name for kind in kinds]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BadOption(f"option {SCORES!r} lists {names_list(repeated)} more than once")
    return [str(kind) for kind in kinds]


def _threshold(value: float | str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise BadOption(f"option {THRESHOLD!r} is {_shown(value)}; it must be a number in [0, 1]")
    return number


def _iterations(value: int | str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise BadOption(
            f"option {NUM_ITERATION!r} is {_shown(value)}; it must be a whole number from 1"
        )
    return int(text)


def _count(value: int | str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        raise BadOption(f"option {MAX_BAD_ROWS!r} is {_shown(value)}; it must be a whole number")
    return int(text)


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= 100 else text[:100] + "…")
