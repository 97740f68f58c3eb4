"""The base of every gate's parameters and catalog entry."""

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

Rate = float


class GateParams(BaseModel):
    """Parameters shared by every gate."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass(frozen=True)
class GateDefinition:
    """A gate the spec may name: its family, parameter model and target."""

    name: str
    family: str
    params: type[GateParams]
    summary: str
