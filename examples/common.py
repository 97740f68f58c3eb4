"""What the examples share: three release datasets from a bundled data set, and a release.

A release runs through the `ml-release` command line, as a team's CI would run it.
The examples read real data that ships with scikit-learn (nothing is downloaded). Rows get
a synthetic, increasing event time; the oldest 60 % are the training snapshot, the next 30 %
the evaluation holdout, and the newest 10 % the serving log: raw requests as JSON, the features
the serving path logged, production's answer and latency, and the label, which has arrived.
"""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ml_release.demo.generate import DemoData, write_demo_data
from ml_release.home import release_home

SHARES = (0.6, 0.3)  # training, evaluation; the rest is the serving log
START = pd.Timestamp("2026-01-01", tz="UTC")


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot encode {type(value)}")


def split(
    frame: pd.DataFrame,
    id_column: str,
    label: str,
    raw_columns: list[str],
    compute_features: Callable[[pd.DataFrame], pd.DataFrame],
    seed: int = 0,
) -> DemoData:
    """The three datasets of `frame`, in a seeded random time order."""
    rng = np.random.default_rng(seed)
    rows = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    rows.insert(0, id_column, [f"{id_column[:3]}-{i:05d}" for i in range(len(rows))])
    rows.insert(1, "event_time", START + pd.to_timedelta(np.arange(len(rows)) * 3600, unit="s"))
    first, second = (int(len(rows) * share) for share in np.cumsum(SHARES))
    served = rows.iloc[second:].reset_index(drop=True)
    features = compute_features(served[raw_columns])
    logged = features.astype(object).where(features.notna(), None).to_dict(orient="records")
    log = pd.DataFrame(
        {
            "request_id": [f"req-{i:05d}" for i in range(len(served))],
            "event_time": served["event_time"],
            "request": [
                json.dumps(r, default=_plain) for r in served[raw_columns].to_dict("records")
            ],
            "logged_features": [json.dumps(r, default=_plain) for r in logged],
            "prediction": rng.uniform(0, 1, len(served)).round(6),
            "latency_ms": np.round(rng.lognormal(np.log(8), 0.3, len(served)), 3),
            label: served[label],
        }
    )
    return DemoData(rows.iloc[:first], rows.iloc[first:second], log)


def data_folder(name: str) -> Path:
    """Where an example's data is written: `$ML_RELEASE_HOME/examples/<name>`."""
    return release_home() / "examples" / name


def write(name: str, data: DemoData) -> Path:
    """Write an example's datasets as Parquet (atomically, file by file)."""
    folder = data_folder(name)
    write_demo_data(folder, data)
    return folder


def release(spec: Path, candidate: Path) -> int:
    """`ml-release --spec SPEC run --candidate CANDIDATE`; its exit code (0 promoted, 1 blocked)."""
    from ml_release.cli import main

    return main(["--spec", str(spec), "run", "--candidate", str(candidate)])


def good_then_bad(spec: Path, data, train) -> int:
    """Write the data, release the good model then the bad one; 0 when promoted then blocked."""
    print(f"data written to {data.write_data()}")
    promoted = release(spec, train.main("good", spec))
    blocked = release(spec, train.main("bad", spec))
    print(f"good model: exit {promoted} (0 = promoted); bad model: exit {blocked} (1 = blocked)")
    return 0 if (promoted, blocked) == (0, 1) else 1
