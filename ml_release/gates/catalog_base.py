"""The base of every gate's parameters and catalog entry."""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

Rate = float


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
