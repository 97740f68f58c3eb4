"""Loading the shared feature module named by `features.code` in the spec.

Light on purpose (pandas only): the serving runtime imports it through `FeatureTransformer`.
"""

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pandas as pd

from ml_release.errors import SpecError


@dataclass(frozen=True)
class FeatureCode:
    """A loaded feature module."""

    module: ModuleType

    @property
    def required_columns(self) -> dict[str, str]:
        """Raw column → kind the feature code reads."""
        return dict(self.module.REQUIRED_COLUMNS)

    @property
    def version(self) -> str:
        """sha256 (12 hex digits) of the module's source file: changes when the code does."""
        source = Path(self.module.__file__ or "")
        return hashlib.sha256(source.read_bytes()).hexdigest()[:12]

    def compute(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Model features for `raw`, row for row."""
        return self.module.compute_features(raw)


def load_feature_code(module_path: str) -> FeatureCode:
    """Import the feature module and check it provides what the release needs."""
    module = importlib.import_module(module_path)
    for attribute in ("REQUIRED_COLUMNS", "compute_features"):
        if not hasattr(module, attribute):
            raise SpecError(
                f"features.code: module {module_path!r} has no {attribute}; a feature module "
                "defines REQUIRED_COLUMNS (raw column -> 'numeric'|'categorical') and "
                "compute_features(raw: DataFrame) -> DataFrame (see docs/spec.md)."
            )
    return FeatureCode(module)
