"""`ml-release coverage`: every failure mode blocked, the control passes, the registry untouched."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from ml_release.cli import main
from ml_release.coverage import mutant
from ml_release.coverage.modes import IN_PROCESS_FAMILIES, MODES
from ml_release.coverage.report import sweep_lines
from ml_release.coverage.run import run_coverage
from ml_release.demo.features import REQUIRED_COLUMNS
from ml_release.home import artifacts_dir, registry_path
from ml_release.jobs import execute_for_coverage
from ml_release.registry import Registry
from tests.conftest import spec_dict, write_spec

IN_PROCESS_MODES = [m.name for m in MODES if set(m.families) <= set(IN_PROCESS_FAMILIES)]


def _registry_state(model: str) -> tuple:
    """Everything the real registry holds: file bytes, aliases, ledger, stored artifacts."""
    registry = Registry(registry_path())
    files = sorted(registry_path().parent.glob(registry_path().name + "*"))
    return (
        [hashlib.sha256(f.read_bytes()).hexdigest() for f in files],
        registry.alias(model),
        [(e.seq, e.event, e.version) for e in registry.events(model)],
        sorted(p.name for p in artifacts_dir().rglob("*")),
    )


@pytest.mark.slow
def test_every_in_process_mode_is_blocked_and_the_real_registry_is_untouched(
    make_release, tmp_path, capsys
):
    spec = make_release()
    assert main(["--spec", str(spec.source), "run"]) == 0  # a real production model
    before = _registry_state(spec.model.name)
    out = tmp_path / "reports"

    modes = ",".join(IN_PROCESS_MODES)
    code = main(["--spec", str(spec.source), "coverage", "--modes", modes, "--out", str(out)])

    printed = capsys.readouterr().out
    assert code == 0, printed
    assert _registry_state(spec.model.name) == before
    matrix = (out / "coverage.md").read_text()
    assert f"{len(IN_PROCESS_MODES)} of {len(IN_PROCESS_MODES)} failure modes blocked" in matrix
    assert "control passed" in matrix and "NOT CAUGHT" not in matrix
    assert "<table>" in (out / "coverage.html").read_text()
    # Which gate catches what: the gate built for each mode says no.
    rows = {line.split(" | ")[0].lstrip("| "): line for line in matrix.splitlines()}
    header = next(line for line in matrix.splitlines() if line.startswith("| failure mode"))
    gates = [c.strip(" `") for c in header.split(" | ")[1:-2]]

    def blocked(title_start: str) -> list[str]:
        line = next(v for k, v in rows.items() if k.startswith(title_start))
        cells = [c.strip() for c in line.split(" | ")[1 : 1 + len(gates)]]
        return [g.split(" @ ")[0] for g, c in zip(gates, cells, strict=True) if c == "BLOCK"]

    assert "null_rate_threshold" in blocked("null flood")
    assert "feature_range" in blocked("values out of range")
    assert "categorical_drift" in blocked("unseen categories")
    assert "training_serving_parity" in blocked("training-serving skew")
    assert "valid_predictions" in blocked("non-finite outputs")
    assert "segment_roc_auc_vs_baseline" in blocked("single-segment regression")
    assert blocked("control") == []
    # A renamed column stops the release with a clear error, before any gate; the prediction
    # assets say the same, not a SQL binder error.
    renamed = rows[next(k for k in rows if k.startswith("schema change: a column"))]
    assert "DataInputError" in renamed and "Binder" not in renamed


@pytest.mark.slow
def test_removing_the_gate_of_a_mode_shows_it_uncovered(make_release, tmp_path, capsys):
    data = spec_dict()
    data["gates"] = [g for g in data["gates"] if g["name"] != "training_serving_parity"]
    make_release()
    spec = write_spec(tmp_path, data)
    out = tmp_path / "reports"
    args = ["--spec", str(spec), "coverage", "--modes", "training_serving_skew", "--out", str(out)]

    assert main(args) == 1

    printed = capsys.readouterr().out
    assert "required but not blocked: training_serving_skew" in printed
    assert "NOT CAUGHT (required)" in (out / "coverage.md").read_text()


@pytest.mark.slow
def test_a_gate_that_blocks_everything_blocks_the_control(make_release, tmp_path):
    data = spec_dict()
    for gate in data["gates"]:
        if gate["name"] == "min_roc_auc":
            gate["threshold"] = 0.999
    make_release()
    spec = write_spec(tmp_path, data)
    from ml_release.spec import load_spec

    result = run_coverage(
        load_spec(spec), tmp_path / "work", execute_for_coverage, modes=["range_anomaly"]
    )

    assert result.control.caught and "min_roc_auc" in result.control.blocked_by
    assert result.exit_code == 1
    assert not (tmp_path / "work").exists()  # the scratch home is removed


@pytest.mark.slow
def test_the_sweep_finds_the_weakest_blocked_strength(make_release, tmp_path):
    spec = make_release()

    result = run_coverage(
        spec, tmp_path / "work", execute_for_coverage, modes=["distribution_shift"], sweep=True
    )

    runs = result.sweeps["distribution_shift"]
    strengths = [r.strength for r in runs]
    assert strengths == sorted(strengths) and runs[-1].caught
    assert not runs[0].caught, "the weakest shift should pass: the sweep would say nothing"
    assert all(not r.caught for r in runs[:-1])  # it stops at the first blocked strength
    assert result.smallest_blocked("distribution_shift") == runs[-1].strength
    assert "numeric_drift" in runs[-1].blocked_by
    row = sweep_lines(result)[-1]
    assert row.startswith("| `distribution_shift` | std shift | 0.01, ")
    assert f"| {runs[-1].strength:g} | numeric_drift |" in row


def test_unknown_modes_are_a_clear_error(make_release, tmp_path, capsys):
    spec = make_release()
    assert main(["--spec", str(spec.source), "coverage", "--modes", "null_flod"]) == 2
    assert "unknown failure mode(s) null_flod" in capsys.readouterr().out


@pytest.fixture()
def mutation(monkeypatch):
    def set_mutation(**fields):
        monkeypatch.setenv(mutant.MUTATION_ENV, json.dumps(fields))

    return set_mutation


def test_the_mutant_hits_the_same_rows_alone_and_in_a_batch(demo, mutation):
    raw = demo.evaluation[list(REQUIRED_COLUMNS)].head(400).reset_index(drop=True)
    mutation(kind="noise", rate=0.3, fill={"age": 40.0, "utilization": 0.3})
    batch = mutant.compute_features(raw)
    alone = pd.concat([mutant.compute_features(raw.iloc[[i]]) for i in range(len(raw))])
    pd.testing.assert_frame_equal(batch, alone.reset_index(drop=True), check_dtype=False)
    clean = mutant._base().compute_features(raw)
    hit = ((batch["age"] != clean["age"]) & (clean["age"] != 40.0)).to_numpy()
    assert 0.2 < hit.mean() < 0.4  # about the configured share


def test_the_segment_mutation_stays_in_its_segment(demo, mutation):
    raw = demo.evaluation[list(REQUIRED_COLUMNS)].head(2000).reset_index(drop=True)
    value = raw["region"].astype(str).value_counts().index[0]
    mutation(kind="segment", column="region", value=value, rate=1.0, fill={"age": 40.0})
    clean = mutant._base().compute_features(raw)["age"]
    changed = (mutant.compute_features(raw)["age"] != clean).to_numpy()
    in_segment = raw["region"].astype(str).to_numpy() == value
    assert changed[in_segment & (clean != 40.0).to_numpy()].all()
    assert not changed[~in_segment].any()
    assert np.isfinite(mutant.compute_features(raw)["age"]).all()


@pytest.mark.slow
def test_the_coverage_job_puts_the_matrix_in_the_run_metadata(make_release):
    from ml_release.definitions import build_definitions

    spec = make_release()
    job = build_definitions(spec).resolve_job_def("coverage")
    config = {"ops": {"gate_coverage": {"config": {"modes": ["range_anomaly"]}}}}

    result = job.execute_in_process(run_config=config, raise_on_error=False)

    assert result.success
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = output.event_specific_data.metadata
    assert "values out of range" in metadata["matrix"].value
    assert metadata["control_passed"].value is True and metadata["uncovered"].value == "none"


def _run(mode, gates=(), failures=(), expects="", exit_code=0):
    from ml_release.coverage.result import ModeRun

    rows = [{"gate": g, "dataset": "d", "blocking": True, "passed": False} for g in gates]
    return ModeRun(mode, mode, None, (), rows, list(failures), 1.0, exit_code, False, expects)


def test_an_undeclared_error_is_errored_never_caught_and_the_matrix_names_the_gate():
    from ml_release.coverage.report import markdown
    from ml_release.coverage.result import CoverageResult

    crash = {"step": "evaluation_report", "error": "KeyError", "message": "'score'"}
    refusal = {"step": "evaluation_holdout", "error": "DataInputError", "message": "column 'x'"}
    runs = [
        _run("blocked", gates=["segment_roc_auc_vs_baseline"], exit_code=1),
        _run("crashed", failures=[crash], exit_code=2),
        _run("blocked_and_crashed", gates=["valid_predictions"], failures=[crash], exit_code=2),
        _run("renamed", failures=[refusal], expects=r"^DataInputError: .*column", exit_code=2),
        _run("wrong_error", failures=[crash], expects=r"^DataInputError", exit_code=2),
        _run("exit_without_reason", exit_code=1),
    ]
    outcomes = {r.mode: (r.outcome, r.caught) for r in runs}
    assert outcomes == {
        "blocked": ("blocked", True),
        "crashed": ("errored", False),
        "blocked_and_crashed": ("errored", False),  # a crash is reported whatever gates did
        "renamed": ("expected error", True),
        "wrong_error": ("errored", False),
        "exit_without_reason": ("errored", False),
    }
    result = CoverageResult("spec.yaml", ["segment_roc_auc_vs_baseline"], _run("control"), runs,
                            required=["blocked", "crashed"])  # fmt: skip
    assert result.errored == [
        "crashed",
        "blocked_and_crashed",
        "wrong_error",
        "exit_without_reason",
    ]
    assert result.uncovered == ["crashed"] and result.exit_code == 1
    matrix = markdown(result)
    assert "2 of 6 failure modes blocked, 4 errored" in matrix
    rows = {line.split(" | ")[0].lstrip("| "): line for line in matrix.splitlines()}
    assert "| segment_roc_auc_vs_baseline |" in rows["blocked"]  # the blocking gate, by name
    assert "evaluation_holdout (DataInputError)" in rows["renamed"]
    assert "ERRORED" in rows["crashed"] and "KeyError" in rows["crashed"]
    crashed_control = CoverageResult("s", [], _run("control", failures=[crash]), [], [])
    assert not crashed_control.control_passed and crashed_control.exit_code == 1


# -- a team's own feature code: derived segments, no raw categorical column --------------------
def _diabetes_raw() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    from examples.regression.features import REQUIRED_COLUMNS as DIABETES

    return load_diabetes(as_frame=True, scaled=False).frame[list(DIABETES)]


def test_a_segment_the_feature_code_derives_is_found_and_mutated(monkeypatch, mutation):
    """`age_band` is computed by the feature code, not a raw column: both sides must find it."""
    from types import SimpleNamespace

    from examples.regression import features as derived
    from ml_release.coverage.bench import Bench

    raw = _diabetes_raw()
    spec = SimpleNamespace(
        data=SimpleNamespace(segments=["age_band"]),
        features=SimpleNamespace(code="examples.regression.features"),
    )
    bench = Bench(spec, raw, raw, raw, derived.REQUIRED_COLUMNS, control=None)
    largest = derived.compute_features(raw)["age_band"].value_counts().index[0]
    assert bench.segment() == ("age_band", largest)

    monkeypatch.setenv(mutant.BASE_ENV, "examples.regression.features")
    assert mutant.REQUIRED_COLUMNS == derived.REQUIRED_COLUMNS  # read when used, not at import
    mutation(kind="segment", column="age_band", value="50_plus", rate=1.0, fill={"bmi": 0.0})
    changed = (mutant.compute_features(raw)["bmi"] != raw["bmi"]).to_numpy()
    in_segment = (raw["age"] >= 50).to_numpy()
    assert changed[in_segment].all() and not changed[~in_segment].any()


def test_unseen_categories_is_not_applicable_without_a_raw_categorical_column():
    from ml_release.coverage.modes import applicable
    from ml_release.spec import parse_spec
    from tests.conftest import PROJECT

    spec = parse_spec(spec_dict(), PROJECT / "release.yaml")
    assert "unseen_categories" in [m.name for m in applicable(spec)[0]]
    numeric_only = spec.features.model_copy(update={"code": "examples.regression.features"})
    chosen, skipped = applicable(spec.model_copy(update={"features": numeric_only}))
    assert "unseen_categories" not in [m.name for m in chosen]
    assert skipped["unseen_categories"] == "the feature code reads no categorical raw column"
