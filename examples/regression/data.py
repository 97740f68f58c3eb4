"""Write the regression example's datasets from scikit-learn's bundled diabetes data.

    python examples/regression/data.py

442 patients, ten baseline measurements, and the target: disease progression one year later.
"""

from sklearn.datasets import load_diabetes

from examples.common import split, write
from examples.regression.features import REQUIRED_COLUMNS, compute_features


def write_data():
    """Write the three datasets into $ML_RELEASE_HOME/examples/regression; return the folder."""
    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(
        columns={"target": "progression"}
    )
    data = split(frame, "patient_id", "progression", list(REQUIRED_COLUMNS), compute_features)
    return write("regression", data)


if __name__ == "__main__":
    print(write_data())
