"""ml-release: release gates for machine-learning models, built on Dagster.

The core in this package is plain Python; only `keys`, `jobs`, `sensors` and `definitions`
touch Dagster. Library entry points are re-exported here and imported on first use, so
`import ml_release` stays light for the CLI and for the serving runtime, whose environment
holds only what serving needs.
"""

import importlib
from typing import Any

_EXPORTS = {
    "DataInputError": "ml_release.errors",
    "ReleaseError": "ml_release.errors",
    "SpecError": "ml_release.errors",
    "ReleaseSpec": "ml_release.spec",
    "load_spec": "ml_release.spec",
}


def publish_candidate(*args, **kwargs):
    """Write a fitted model into incoming/ (see `ml_release.publish.publish_candidate`)."""
    from ml_release.publish import publish_candidate as publish

    return publish(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ml_release' has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = [*_EXPORTS, "__version__", "publish_candidate"]
