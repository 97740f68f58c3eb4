"""The base of every gate's parameters and catalog entry."""

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Rate = float
SmallSegments = Literal["pool", "block", "warn"]
SMALL_SEGMENTS_RULE = (
    "Segments below `min_support` follow `small_segments`: `pool` (default) judges the small "
    "segments of each column together as one more segment of the family (listed as not judged "
    "only when even the pool is below `min_support`), `block` makes the gate `inconclusive` "
    "while any exists, `warn` lists them as not judged."
)


def small_segments_field() -> Any:
    """The `small_segments` parameter of every segment gate."""
    return Field(
        "pool",
        description="Segments below `min_support`: `pool` judges them together (one more "
        "segment per column), `block` makes the gate inconclusive, `warn` lists them as not "
        "judged.",
    )


class GateParams(BaseModel):
    """Parameters shared by every gate."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass(frozen=True)
class GateDefinition:
    """A gate the spec may name: its family, parameter model and target.

    `verdict_rule` (when it passes, fails, is inconclusive) and `example` (the parameters of a
    typical `gates:` entry, validated against `params` by the docs test) feed docs/gates.md.
    """

    name: str
    family: str
    params: type[GateParams]
    summary: str
    verdict_rule: str = ""
    example: dict[str, Any] | None = None
