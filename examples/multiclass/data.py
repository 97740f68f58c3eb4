"""Write the multi-class example's datasets from scikit-learn's bundled digits data.

    python -m examples.multiclass.data

1,797 handwritten digits (8x8 pixels, values 0-16) and their class, 0-9.
"""

from sklearn.datasets import load_digits

from examples.common import split, write
from examples.multiclass.features import REQUIRED_COLUMNS, compute_features


def write_data():
    """Write the three datasets into $ML_RELEASE_HOME/examples/multiclass; return the folder."""
    frame = load_digits(as_frame=True).frame.rename(columns={"target": "digit"})
    data = split(frame, "image_id", "digit", list(REQUIRED_COLUMNS), compute_features)
    return write("multiclass", data)


if __name__ == "__main__":
    print(write_data())
