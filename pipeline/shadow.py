"""How a shadow version's predictions of a file differ from the primary's.

A model's shadow (``pipeline model shadow``) scores every file for the model
in the same pass as its primary version, for comparison only: the output is
the primary's. What the notification says is ``ShadowRef``; the report
beside the output (``<job>.shadow.json``) is ``ShadowReport``. The counting
is the worker's (``pipeline.scoring.shadow``); this module holds no numpy, so
clients read it as it is.

Differences are of ``prediction`` (the probability of a binary model, each
class's for a multiclass one, the value of a regression), shadow minus
primary. ``rank_correlation`` is Spearman's (average ranks for ties) over all
rows; for a multiclass model the notification gives the lowest of the
classes', the report each.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.quality import Location

SHADOW_SUFFIX = ".shadow.json"
#: Rows the report lists: the largest differences.
TOP_ROWS = 20


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Figures(_Frozen):
    """One output's comparison (a binary or regression model's only one; a class's)."""

    max_abs_diff: float | None = Field(description="Largest |shadow - primary| of any row.")
    mean_abs_diff: float | None = Field(description="Mean |shadow - primary| over the rows.")
    rank_correlation: float | None = Field(
        description="Spearman's rank correlation of the two; null under 2 rows or when "
        "either is constant."
    )


class ClassFigures(Figures):
    output: str = Field(description="The output column compared: `prediction`, `prediction_<k>`.")


class ShadowRow(_Frozen):
    row: int = Field(ge=1, description="The 1-based data row of the input (header not counted).")
    output: str
    primary: float
    shadow: float
    diff: float = Field(description="shadow - primary")


class ShadowRef(Figures):
    """What the notification says of the shadow's scoring of the file."""

    version: int = Field(ge=1)
    alias: str | None = Field(default=None, description="The alias that named the shadow.")
    rows: int = Field(ge=0, description="Rows both versions scored.")
    flips: int | None = Field(
        default=None,
        ge=0,
        description="Binary models: rows whose label at the threshold in force differs.",
    )
    report: Location | None = Field(
        default=None,
        description="The comparison as JSON (`ShadowReport`): per class, and the rows with "
        "the largest differences.",
    )
    error: str | None = Field(
        default=None,
        description="Why the shadow could not score the file (the primary's output is "
        "unaffected); the figures are null then.",
    )


class ShadowReport(_Frozen):
    """``<job>.shadow.json``: the file's comparison of primary and shadow."""

    job_id: str
    model: str
    primary_version: int
    shadow_version: int
    shadow_alias: str | None = None
    rows: int
    threshold: float | None = Field(description="The threshold flips were counted at.")
    flips: int | None
    #: Multiclass: rows whose most likely class differs.
    argmax_changes: int | None = None
    overall: Figures
    classes: list[ClassFigures]
    #: The rows with the largest |diff| (any output), largest first; ties to the earlier row.
    largest: list[ShadowRow]
