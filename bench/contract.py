"""Benchmark of the data contract: the project's gates, pandera on pandas, and a bare DuckDB scan.

The parent process generates deterministic Parquet files under bench/.data/ (reused when present)
and runs every measurement in its own child process (`--measure METHOD --rows N`), which prints
one JSON line: wall time of the work (time.perf_counter, imports excluded and reported apart)
and the child's peak RSS (ru_maxrss, nothing subtracted). See bench/README.md.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
VERSION = "v1"  # bump when the generator changes, so cached files are not reused
CHUNK = 250_000  # rows per ParquetWriter chunk (= per row group)
REF_ROWS = 1_000_000
MAX_NULL_RATE = 0.05
# name: (dtype, null share, draw(rng, n), allowed [low, high]); values are clipped to the range.
NUMERIC = {
    "f_amount": ("float64", 0.02, lambda r, n: r.lognormal(3, 1, n), (0.0, 1e4)),
    "f_score": ("float64", 0.0, lambda r, n: r.normal(0.5, 0.15, n), (0.0, 1.0)),
    "f_ratio": ("float64", 0.01, lambda r, n: r.beta(2, 5, n), (0.0, 1.0)),
    "f_temp": ("float64", 0.0, lambda r, n: r.normal(20, 8, n), (-40.0, 60.0)),
    "f_latency": ("float64", 0.0, lambda r, n: r.exponential(100, n), (0.0, 5e3)),
    "f_balance": ("float64", 0.0, lambda r, n: r.normal(1e3, 500, n), (-5e3, 1e4)),
    "f_util": ("float64", 0.0, lambda r, n: r.uniform(0, 1.2, n), (0.0, 5.0)),
    "f_rate": ("float64", 0.03, lambda r, n: r.gamma(2, 0.05, n), (0.0, 1.0)),
    "i_age": ("int64", 0.0, lambda r, n: r.integers(18, 90, n), (18, 100)),
    "i_count": ("int64", 0.0, lambda r, n: r.poisson(3, n), (0, 1000)),
    "i_tenure": ("int32", 0.0, lambda r, n: r.integers(0, 480, n), (0, 600)),
    "i_visits": ("int32", 0.0, lambda r, n: r.poisson(20, n), (0, 1000)),
    "i_items": ("int64", 0.0, lambda r, n: r.binomial(50, 0.1, n), (0, 50)),
    "i_streak": ("int64", 0.0, lambda r, n: r.geometric(0.3, n), (1, 1000)),
}
# name: (number of categories, null share); category k is drawn with weight 1 / (k + 1) ** 0.7.
CATEGORICAL = {
    "c_region": (8, 0.0),
    "c_channel": (4, 0.0),
    "c_device": (3, 0.005),
    "c_plan": (12, 0.0),
    "c_country": (40, 0.0),
    "c_merchant": (300, 0.01),
}
SPEC = f"""
model: {{name: bench}}
data:
  id_column: id
  timestamp_column: event_time
  label: label
  segments: [c_region, c_channel]
  training: {{path: reference.parquet}}
  evaluation: {{path: target.parquet}}
  serving_log: {{path: serving.parquet}}
features: {{code: ml_release.demo.features}}
allow_ungated: true  # the data-contract gates alone are measured here
gates:
  - {{name: feature_schema}}
  - {{name: null_rate_threshold, max_null_rate: {MAX_NULL_RATE}}}
  - {{name: feature_range, max_out_of_range_rate: 0.0}}
  - {{name: numeric_drift, method: psi, threshold: 0.2}}
  - {{name: categorical_drift, max_unseen_rate: 0.0}}
"""
COLUMNS = ["id", "event_time", "label", *NUMERIC, *CATEGORICAL]
METHODS = {
    "reference": "reference profile, 1M rows (one-off; cached in the warehouse in production)",
    "floor": "floor: bare DuckDB scan, count() of every column",
    "project": "P: project contract, evaluate_contract (5 gates)",
    "pandera": "pandera on pandas: read_parquet + lazy validate",
}


def vocabulary(name: str) -> list[str]:
    """The categories of a categorical column, e.g. `merchant_007`."""
    return [f"{name[2:]}_{k:03d}" for k in range(CATEGORICAL[name][0])]


def _chunk(seed: int, index: int, start: int, n: int):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng([seed, index])
    ids = np.arange(start, start + n, dtype=np.int64)
    base = np.datetime64("2026-01-01T00:00:00", "us")
    columns = {
        "id": pa.array(ids),
        "event_time": pa.array(base + ids.astype("timedelta64[s]")),
        "label": pa.array((rng.random(n) < 0.1).astype(np.int8)),
    }
    for name, (dtype, nulls, draw, (low, high)) in NUMERIC.items():
        values = np.clip(draw(rng, n), low, high).astype(dtype)
        columns[name] = pa.array(values, mask=rng.random(n) < nulls if nulls else None)
    for name, (size, nulls) in CATEGORICAL.items():
        weights = 1.0 / np.arange(1, size + 1) ** 0.7
        codes = rng.choice(size, n, p=weights / weights.sum()).astype(np.int32)
        codes = pa.array(codes, mask=rng.random(n) < nulls if nulls else None)
        dictionary = pa.DictionaryArray.from_arrays(codes, pa.array(vocabulary(name)))
        columns[name] = dictionary.dictionary_decode()
    return pa.table(columns)


def data_path(kind: str, rows: int) -> Path:
    """Where the `target` or `reference` file of `rows` rows is cached."""
    return DATA / f"{kind}_{rows}_{VERSION}.parquet"


def dataset(kind: str, rows: int) -> Path:
    """The cached Parquet file of `rows` rows, generated in chunks when missing."""
    path = data_path(kind, rows)
    if path.exists():
        return path
    import pyarrow.parquet as pq

    DATA.mkdir(exist_ok=True)
    (DATA / ".gitignore").write_text("*\n")
    seed = {"target": 1, "reference": 2}[kind]
    started, partial = time.perf_counter(), path.with_suffix(".partial")
    writer = None
    for index, start in enumerate(range(0, rows, CHUNK)):
        table = _chunk(seed, index, start, min(CHUNK, rows - start))
        writer = writer or pq.ParquetWriter(partial, table.schema)
        writer.write_table(table)
    writer.close()
    partial.rename(path)
    print(f"generated {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def build_spec():
    """The spec of every data-contract gate over the bench columns (pandera gets the same rules).

    The source paths only satisfy the spec parser: the contract reads the relations it is given.
    """
    import yaml

    from ml_release.spec import parse_spec

    data = yaml.safe_load(SPEC)
    data["features"] |= {"numeric": [*NUMERIC], "categorical": [*CATEGORICAL]}
    data["contract"] = {
        "ranges": {c: {"min": lo, "max": hi} for c, (*_, (lo, hi)) in NUMERIC.items()},
        "categories": {c: vocabulary(c) for c in CATEGORICAL},
    }
    return parse_spec(data, HERE / "release.yaml")


def _floor(target: Path) -> Iterator[None]:
    import duckdb

    connection = duckdb.connect()
    # Without this, DuckDB answers count() of a column without nulls from Parquet metadata and
    # skips reading it: the floor must decode every column, as the contract does.
    connection.execute("SET disabled_optimizers = 'statistics_propagation'")
    counts = ", ".join(f'count("{c}")' for c in COLUMNS)
    yield
    connection.execute(f"SELECT {counts} FROM read_parquet(?)", [str(target)]).fetchall()
    yield


def _reference(reference: Path) -> Iterator[None]:
    import duckdb

    from ml_release.contract.profile import profile_reference
    from ml_release.contract.run import contract_kinds, reference_bins

    spec, connection = build_spec(), duckdb.connect()
    stored = DATA / f"reference_profile_{spec.spec_hash[:12]}.json"
    yield
    args = ("read_parquet(?)", [str(reference)], contract_kinds(spec), reference_bins(spec))
    profile = profile_reference(connection, *args)
    yield
    stored.write_text(profile.to_json())


def _project(target: Path) -> Iterator[None]:
    import duckdb

    from ml_release.contract.gates import evaluate_contract
    from ml_release.contract.profile import Profile

    spec, connection = build_spec(), duckdb.connect()
    stored = DATA / f"reference_profile_{spec.spec_hash[:12]}.json"
    if not stored.exists():
        sys.exit(f"{stored} is missing: run `--measure reference` first")
    reference = Profile.from_json(stored.read_text())
    relations = [("read_parquet(?)", [str(f)]) for f in (target, data_path("reference", REF_ROWS))]
    yield
    gates = list(spec.gates)
    results = evaluate_contract(connection, spec, "target", *relations, reference, gates, ["id"])
    yield
    for result in results:
        print(f"  {result.gate}: {result.verdict.value} - {result.summary}", file=sys.stderr)


def _pandera(target: Path) -> Iterator[None]:
    import pandas as pd
    import pandera.pandas as pa

    def null_share(series: pd.Series) -> bool:
        return series.isna().mean() <= MAX_NULL_RATE

    def column(dtype, *checks) -> pa.Column:
        share = pa.Check(null_share, name="null_share", ignore_na=False)  # sees the nulls
        return pa.Column(dtype, checks=[share, *checks], nullable=True)

    columns = {k: pa.Column(nullable=True, required=False) for k in ["id", "event_time", "label"]}
    for name, (dtype, _, _, (low, high)) in NUMERIC.items():
        columns[name] = column(dtype, pa.Check.in_range(low, high))
    columns |= {c: column(str, pa.Check.isin(vocabulary(c))) for c in CATEGORICAL}
    schema = pa.DataFrameSchema(columns, strict=True)
    yield
    try:
        schema.validate(pd.read_parquet(target), lazy=True)
        failures = 0
    except pa.errors.SchemaErrors as exc:
        failures = len(exc.failure_cases)
    yield
    print(f"  pandera: {failures} failure case(s)", file=sys.stderr)


def _peak_mib() -> tuple[float, float]:
    """ru_maxrss (KiB on Linux) and, as a cross-check, VmHWM of this process, in MiB."""
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, int(status.split()[0]) / 1024


def measure(method: str, rows: int) -> None:
    """Child: run one method, print its wall time and peak RSS as one JSON line."""
    started = time.perf_counter()
    steps = {"floor": _floor, "reference": _reference, "project": _project, "pandera": _pandera}
    work = steps[method](data_path("reference" if method == "reference" else "target", rows))
    next(work)  # imports and setup, timed apart
    imported, (import_rss, _) = time.perf_counter(), _peak_mib()
    next(work)  # the measured work
    seconds = time.perf_counter() - imported
    peak, hwm = _peak_mib()
    next(work, None)  # logging, after the measurement
    report = {"seconds": seconds, "import_seconds": imported - started, "peak_rss_mib": peak}
    print(json.dumps(report | {"import_rss_mib": import_rss, "vmhwm_mib": hwm}))


def _child(*args: str | int) -> str:
    # The parent never imports numpy or pyarrow and generates data in children: a child spawned
    # with vfork starts with the parent's ru_maxrss, so the parent must stay small.
    command = [sys.executable, str(Path(__file__)), *map(str, args)]
    print(f"$ {' '.join(command[1:])}", file=sys.stderr, flush=True)
    return subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout


def _best(method: str, rows: int, repeat: int) -> dict:
    runs = [json.loads(_child("--measure", method, "--rows", rows)) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    return best | {"peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


def _warm(path: Path) -> None:
    with path.open("rb") as handle:  # read once so that no method pays for a cold page cache
        while handle.read(1 << 24):
            pass


def report(table: list[tuple[int, str, dict]], sizes: list[int]) -> None:
    """Print the measurements, then the ratios against the targets, as Markdown tables."""
    lines = [
        "| rows | measurement | wall s | peak RSS MiB | RSS after imports MiB | imports + setup s |"
    ]
    lines.append("|---:|---|---:|---:|---:|---:|")
    for rows, method, r in table:
        lines.append(
            f"| {rows:,} | {METHODS[method]} | {r['seconds']:.2f} | {r['peak_rss_mib']:.0f} "
            f"| {r['import_rss_mib']:.0f} | {r['import_seconds']:.2f} |"
        )
    lines += ["", "| rows | P / floor (<= 2x) | pandera / P (>= 3x) | P peak RSS (< 1 GiB) |"]
    lines.append("|---:|---|---|---|")
    met = {True: "met", False: "NOT met"}
    for rows in sizes:
        got = {m: r for n, m, r in table if n == rows}
        p, rss = got["project"]["seconds"], got["project"]["peak_rss_mib"]
        ratio, speedup = p / got["floor"]["seconds"], got.get("pandera", {}).get("seconds", 0) / p
        versus = f"{speedup:.1f}x {met[speedup >= 3]}" if speedup else "skipped"
        memory = f"{rss:.0f} MiB {met[rss < 1024]}"
        lines.append(f"| {rows:,} | {ratio:.2f}x {met[ratio <= 2]} | {versus} | {memory} |")
    print("\n" + "\n".join(lines))


def main() -> None:
    """Parse the options; run one measurement (child) or the whole benchmark (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="target rows, comma-separated")
    parser.add_argument("--quick", action="store_true", help="100k rows only (smoke test)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; best kept")
    parser.add_argument("--skip-pandera-above", type=int, help="skip pandera above this size")
    parser.add_argument("--measure", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--generate", choices=["target", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        return print(dataset(args.generate, args.rows))
    if args.measure:
        return measure(args.measure, args.rows)
    sizes = [100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeat = 1 if args.quick else args.repeat
    for kind, rows in [("reference", REF_ROWS), *(("target", n) for n in sizes)]:
        _child("--generate", kind, "--rows", rows)
    _warm(data_path("reference", REF_ROWS))
    table = [(REF_ROWS, "reference", _best("reference", REF_ROWS, repeat))]
    for rows in sizes:
        _warm(data_path("target", rows))
        print(f"load average before {rows:,} rows: {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for method in ["floor", "project", "pandera"]:
            if method != "pandera" or rows <= (args.skip_pandera_above or rows):
                table.append((rows, method, _best(method, rows, repeat)))
    report(table, sizes)


if __name__ == "__main__":
    main()
