"""The regression example end to end: data, a promoted model, then a blocked one.

    python examples/regression/run.py

1. writes the datasets from scikit-learn's bundled diabetes data;
2. trains the team's pipeline and publishes it: the first release, gated against the training
   mean, is promoted;
3. trains the same pipeline on an export with a labelling bug for patients aged 50 and over:
   blocked, with the segment named in the evidence. Production stays on the first model.
Exit code 0 when both outcomes are as described.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root

from examples.common import good_then_bad
from examples.regression import data, train

SPEC = Path(__file__).with_name("release.yaml")


def main() -> int:
    """Run both releases; 0 when the good model is promoted and the bad one blocked."""
    return good_then_bad(SPEC, data, train)


if __name__ == "__main__":
    sys.exit(main())
