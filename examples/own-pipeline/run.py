"""Gate the model you already have, end to end: a promoted model, then a blocked one.

    python examples/own-pipeline/run.py

1. writes a small copy of the demo data (4,000 training, 2,000 holdout, 500 logged rows);
2. publishes HistGradientBoosting with native categoricals: the first release, promoted;
3. publishes XGBoost trained with inverted labels for one channel: blocked, the segment
   channel=partner named in the evidence. Production stays on the first model.
Exit code 0 when both outcomes are as described. Needs `pip install -e '.[boosting]'`.
`python examples/own-pipeline/train.py lightgbm` publishes the LightGBM model of train.py, for
`ml-release --spec examples/own-pipeline/release.yaml run --candidate <folder>`.
"""

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root

from examples.common import release
from ml_release.demo.generate import generate, write_demo_data
from ml_release.home import release_home

HERE = Path(__file__).resolve().parent
SPEC = HERE / "release.yaml"
RELEASED = ("hist_gradient_boosting", "xgboost_bad")


def _train():
    spec = importlib.util.spec_from_file_location("own_pipeline_train", HERE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    """Run both releases; 0 when the first is promoted and the second blocked."""
    folder = release_home() / "examples" / "own-pipeline"
    write_demo_data(folder, generate(seed=11, n_training=4000, n_evaluation=2000, n_serving=500))
    print(f"data written to {folder}")
    train = _train()
    codes = [release(SPEC, train.main(kind, SPEC)) for kind in RELEASED]
    print(f"exit codes {codes} (0 = promoted, 1 = blocked); expected [0, 1]")
    return 0 if codes == [0, 1] else 1


if __name__ == "__main__":
    sys.exit(main())
