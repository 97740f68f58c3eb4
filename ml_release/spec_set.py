"""One release spec, or a folder of them: the models one code location gates.

`--spec` (or `$ML_RELEASE_SPEC`) names a file or a folder. A folder's `*.yaml` files are loaded
in name order, each a model of its own: its assets sit under the key prefix of its model's name,
its jobs and sensors are named `<model>__<name>` (`ReleaseSpec.scope`). A folder holding one
spec is gated as that spec alone, with the plain names.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from ml_release.errors import SpecError
from ml_release.spec import ReleaseSpec, load_spec

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # what Dagster accepts in job and op names


@dataclass(frozen=True)
class SpecSet:
    """The specs of one code location, by model name."""

    source: Path  # the file or the folder
    specs: tuple[ReleaseSpec, ...]

    @property
    def many(self) -> bool:
        """Several models: names are scoped by model."""
        return len(self.specs) > 1

    @property
    def models(self) -> list[str]:
        """The model names, in load order."""
        return [spec.model.name for spec in self.specs]

    def get(self, model: str) -> ReleaseSpec | None:
        """The spec of `model`, or None."""
        return next((spec for spec in self.specs if spec.model.name == model), None)

    def pick(self, model: str | None) -> ReleaseSpec:
        """The spec of `--model`; the only one when there is one.

        Raises:
            SpecError: Several specs and no `--model`, or no spec for `model`.
        """
        if model is None:
            if self.many:
                raise SpecError(
                    f"{self.source} holds {len(self.specs)} release specs "
                    f"({', '.join(self.models)}): name one with --model"
                )
            return self.specs[0]
        spec = self.get(model)
        if spec is None:
            raise SpecError(
                f"no release spec for model {model!r} in {self.source}; "
                f"it gates {', '.join(self.models)}"
            )
        return spec


def load_specs(path: Path | str) -> SpecSet:
    """Read a spec file, or every `*.yaml` of a folder (scoped by model when there are several).

    Raises:
        SpecError: An invalid spec (named), an empty folder, or two specs of one model.
    """
    path = Path(path).resolve()
    if not path.is_dir():
        return SpecSet(path, (load_spec(path),))
    files = sorted(path.glob("*.yaml"))
    if not files:
        raise SpecError(f"{path}: a folder of release specs holds no *.yaml file")
    specs = [load_spec(file) for file in files]
    seen: dict[str, Path] = {}
    for spec in specs:
        first = seen.setdefault(spec.model.name, spec.source)
        if first != spec.source:
            raise SpecError(
                f"{spec.source} and {first} both gate model {spec.model.name!r}: one spec per "
                "model (merge their gates into one file)"
            )
    if len(specs) > 1:
        for spec in specs:
            if not NAME.fullmatch(spec.model.name):
                raise SpecError(
                    f"{spec.source}: model.name {spec.model.name!r} cannot name this model's jobs "
                    "and asset keys beside others: use letters, digits and underscores"
                )
            spec._scope = spec.model.name
            spec._definitions_source = path
    return SpecSet(path, tuple(specs))
