"""ml-release: release gates for machine-learning models, built on Dagster.

The core in this package is plain Python; only `keys`, `jobs`, `sensors` and `definitions`
touch Dagster. Library entry points are re-exported here.
"""

from ml_release.errors import DataInputError, ReleaseError, SpecError
from ml_release.spec import ReleaseSpec, load_spec


def publish_candidate(*args, **kwargs):
    """Write a fitted model into incoming/ (see `ml_release.publish.publish_candidate`)."""
    # Imported on call, so `import ml_release` stays light for the CLI.
    from ml_release.publish import publish_candidate as publish

    return publish(*args, **kwargs)


__version__ = "0.1.0"
__all__ = [
    "DataInputError",
    "ReleaseError",
    "ReleaseSpec",
    "SpecError",
    "__version__",
    "load_spec",
    "publish_candidate",
]
