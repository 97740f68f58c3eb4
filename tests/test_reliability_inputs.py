"""Bad inputs (RELIABILITY.md), through the command line: a clear error, and nothing changed.

Every case hands one bad input to the command a user would run (`validate` and `run` for data
and specs, `register` for artifacts) on a project whose production model was promoted by its
gates, then checks: the documented exit code, a message naming the object and what to do, no
traceback, and the same ledger, production alias and stored files as before. Inputs that the
unit suites cover closer to the code (serving payloads, predictions, segments) carry the same
`reliability("input")` marker there and count in docs/reliability.md.
"""

import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml_release.artifacts.skops_io import skops_bytes
from tests.cli_project import cli_in_process, data, pristine, project, state
from tests.test_artifacts import Trap, forge

__all__ = ["data", "pristine", "project"]  # fixtures

pytestmark = [pytest.mark.slow, pytest.mark.reliability("input")]
GATED_BLOCKED = False  # the project's setup gates no blocked candidate for these cases


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, which command meets it, what it must answer."""

    make: Callable[[dict, Path], tuple[str, ...]]  # (project, scratch) -> the command's args
    code: int
    says: tuple[str, ...]  # fragments of the message, lowercase


def _spec(project, scratch: Path, edit: Callable[[dict], None]) -> Path:
    spec = yaml.safe_load(Path(project["spec"]).read_text())
    edit(spec)
    path = scratch / "release.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _holdout(project) -> pd.DataFrame:
    return pd.read_parquet(project["home"] / "demo" / "evaluation_holdout.parquet")


def _with_holdout(write: Callable[[pd.DataFrame, Path], Path], command: str = "validate"):
    """A case whose evaluation source is the demo holdout changed by `write` (its path)."""

    def make(project, scratch):
        path = write(_holdout(project), scratch)

        def edit(spec):
            spec["data"]["evaluation"] = {"path": str(path)}

        return "--spec", str(_spec(project, scratch, edit)), command

    return make


def _with_training(write: Callable[[pd.DataFrame, Path], Path]):
    """A case whose training source is the demo snapshot changed by `write` (its path)."""

    def make(project, scratch):
        frame = pd.read_parquet(project["home"] / "demo" / "training_snapshot.parquet")
        path = write(frame, scratch)

        def edit(spec):
            spec["data"]["training"] = {"path": str(path)}

        return "--spec", str(_spec(project, scratch, edit)), "validate"

    return make


def _mixed_time_zones(frame, scratch):
    """Times as text, in two zones and with one typo: they would sort as text."""
    times = frame["event_time"].dt.tz_convert("Europe/Paris").astype(str)
    times = times.where(frame.index % 2 == 0, frame["event_time"].astype(str))
    return _parquet(frame.assign(event_time=times.where(frame.index != 5, "2026-13-45")), scratch)


def _spec_edit(edit: Callable[[dict], None]):
    return lambda project, scratch: ("--spec", str(_spec(project, scratch, edit)), "validate")


def _parquet(frame: pd.DataFrame, scratch: Path, name="holdout.parquet") -> Path:
    path = scratch / name
    frame.to_parquet(path)
    return path


def _truncated(frame, scratch):
    """Pages cut out of the middle, the footer intact: the schema reads, the data does not."""
    path = _parquet(frame, scratch)
    raw = path.read_bytes()
    footer = int.from_bytes(raw[-8:-4], "little") + 8
    cut = path.parent / "truncated.parquet"
    cut.write_bytes(raw[:4] + raw[len(raw) // 3 : -footer] + raw[-footer:])
    return cut


def _register(build: Callable[[dict, Path], Path], *extra: str):
    return lambda project, scratch: ("register", str(build(project, scratch)), *extra)


def _model(project):
    from ml_release.artifacts.skops_io import load_model

    return load_model(project["folders"]["v1"])


def _pickle_as_skops(project, scratch):
    path = scratch / "model.skops"
    path.write_bytes(pickle.dumps(Trap(scratch / "pwned")))
    return path


def _foreign_types(project, scratch):
    from sklearn.neighbors import KNeighborsClassifier

    holdout = _holdout(project).head(50)
    model = KNeighborsClassifier(n_neighbors=3).fit(holdout[["age"]], holdout["defaulted"])
    path = scratch / "model.skops"
    path.write_bytes(skops_bytes(model))
    return path


def _manifest_edit(edit: Callable[[dict, Path], None]):
    def build(project, scratch):
        folder = scratch / "artifact"
        shutil.copytree(project["folders"]["v3"], folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        edit(manifest, scratch)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return folder

    return build


def _symlinked_model(project, scratch):
    folder = scratch / "artifact"
    shutil.copytree(project["folders"]["v3"], folder)
    outside = scratch / "outside.skops"
    shutil.move(folder / "model.skops", outside)
    (folder / "model.skops").symlink_to(outside)
    return folder


def _same_version_other_digest(project, scratch):
    folder = scratch / "artifact"
    shutil.copytree(project["folders"]["v3"], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = "v1"  # v1 is registered with another digest
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _forged(project, scratch):
    folder = scratch / "artifact"
    shutil.copytree(project["folders"]["v3"], folder)
    return forge(folder, pickle.dumps(Trap(scratch / "pwned")))


def _renamed(frame, scratch):
    return _parquet(frame.rename(columns={"age": "customer_age"}), scratch)


def _strings(frame, scratch):
    return _parquet(frame.assign(age=frame["age"].astype(str)), scratch)


def _duplicate_ids(frame, scratch):
    return _parquet(pd.concat([frame, frame.head(40)]), scratch)


def _nan_labels(frame, scratch):
    return _parquet(
        frame.assign(defaulted=frame["defaulted"].astype(float).mask(frame.index < 7)), scratch
    )


def _labels_out_of_range(frame, scratch):
    return _parquet(frame.assign(defaulted=frame["defaulted"] * 2), scratch)


def _empty(frame, scratch):
    return _parquet(frame.head(0), scratch)


def _header_only_csv(frame, scratch):
    path = scratch / "holdout.csv"
    frame.head(0).to_csv(path, index=False)
    return path


def _zero_bytes(frame, scratch):
    path = scratch / "holdout.parquet"
    path.write_bytes(b"")
    return path


def _csv_named_parquet(frame, scratch):
    path = scratch / "holdout.parquet"
    frame.to_csv(path, index=False)
    return path


def _tail_cut(frame, scratch):
    path = _parquet(frame, scratch)
    path.write_bytes(path.read_bytes()[:-100])
    return path


def _one_class(frame, scratch):
    return _parquet(frame.assign(defaulted=0), scratch)


def _threshold(value):
    def edit(spec):
        gate = next(g for g in spec["gates"] if g["name"] == "min_roc_auc")
        gate["threshold"] = value

    return edit


def _gate(name: str, **params):
    def edit(spec):
        spec["gates"].append({"name": name, **params})

    return edit


def _label(value: str):
    def edit(spec):
        spec["data"]["label"] = value

    return edit


def _segment(value: str):
    def edit(spec):
        spec["data"]["segments"] = [value, "channel"]

    return edit


def _range(low, high):
    def edit(spec):
        spec["contract"]["ranges"]["age"] = {"min": low, "max": high}

    return edit


CASES = {
    # -- data: `validate` reads each source as `run` would --------------------------------------
    "empty dataset": Case(_with_holdout(_empty), 2, ("evaluation_holdout", "no rows")),
    "header-only csv": Case(_with_holdout(_header_only_csv), 2, ("evaluation_holdout", "no rows")),
    "zero-byte file": Case(
        _with_holdout(_zero_bytes), 2, ("evaluation_holdout", "holdout.parquet")
    ),
    "csv named .parquet": Case(_with_holdout(_csv_named_parquet), 2, ("holdout.parquet",)),
    "truncated parquet, footer intact": Case(_with_holdout(_truncated), 2, ("truncated.parquet",)),
    "parquet cut at the end": Case(_with_holdout(_tail_cut), 2, ("holdout.parquet",)),
    "renamed column": Case(_with_holdout(_renamed), 2, ("'age'",)),
    "numbers sent as strings": Case(_with_holdout(_strings), 2, ("'age'",)),
    "mixed-time-zone and invalid timestamps": Case(
        _with_training(_mixed_time_zones), 2, ("event_time", "timestamp")
    ),
    "duplicate ids": Case(_with_holdout(_duplicate_ids), 2, ("customer_id", "80 rows")),
    "NaN labels": Case(_with_holdout(_nan_labels), 2, ("7 row(s)", "defaulted")),
    "labels outside the task's values": Case(
        _with_holdout(_labels_out_of_range), 2, ("defaulted",)
    ),
    "duplicate ids reach run": Case(
        _with_holdout(_duplicate_ids, "run"), 2, ("customer_id", "80 rows")
    ),
    "one-class evaluation set reaches run": Case(
        _with_holdout(_one_class, "run"), 1, ("inconclusive",)
    ),
    # -- the spec ------------------------------------------------------------------------------
    "SQL in an identifier": Case(_spec_edit(_label('x"; DROP TABLE registry; --')), 2, ("label",)),
    "unicode look-alike identifier": Case(_spec_edit(_segment("regi\u043en")), 2, ("regi\u043en",)),
    "threshold NaN": Case(_spec_edit(_threshold(float("nan"))), 2, ("min_roc_auc", "threshold")),
    "threshold outside the metric's range": Case(
        _spec_edit(_threshold(1.5)), 2, ("min_roc_auc", "threshold")
    ),
    "min above max": Case(_spec_edit(_range(90, 18)), 2, ("age",)),
    "unknown metric": Case(
        _spec_edit(_gate("accuracy_of_vibes_min", threshold=0.5)), 2, ("accuracy_of_vibes_min",)
    ),
    # -- artifacts: `register` is the door -----------------------------------------------------
    "pickle disguised as .skops": Case(_register(_pickle_as_skops), 4, ("pickle",)),
    "pickle inside a signed folder": Case(_register(_forged), 4, ("refused",)),
    ".skops with types outside the allowed list": Case(
        _register(_foreign_types), 4, ("kdtree", "trusted_types")
    ),
    "model file a symlink out of the store": Case(_register(_symlinked_model), 4, ("symlink",)),
    "version with ..": Case(
        _register(_manifest_edit(lambda m, s: m.update(version="../v9"))), 4, ("version",)
    ),
    "another model's artifact": Case(
        _register(_manifest_edit(lambda m, s: m.update(name="other_model"))), 4, ("other_model",)
    ),
    "same version, another digest": Case(_register(_same_version_other_digest), 3, ("v1",)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_a_bad_input_is_refused_clearly_and_changes_nothing(
    project, case, tmp_path, record_property
):
    scratch = tmp_path / "case"
    scratch.mkdir()
    args = case.make(project, scratch)
    before = state(project)
    code, out = cli_in_process(project, *args)
    assert code == case.code, out
    for fragment in case.says:
        assert fragment.lower() in out.lower(), (fragment, out)
    assert "Traceback" not in out
    changed = state_changes(before, state(project), judged="run" in args)
    record_property("state_changes", len(changed))
    assert not changed
    assert not (scratch / "pwned").exists()


def state_changes(before, after, judged: bool = False) -> list[str]:
    """What differs from before, beyond a refusal recorded as `refused` events.

    `judged`: the input reached a release, which may register its candidate and record its
    verdict (a new version, `registered` then `blocked` or `errored`): a change the ledger
    describes. Production and every stored artifact stay as they were.
    """
    (alias, events, files), (alias_now, events_now, files_now) = before, after
    allowed = {"refused", "registered", "blocked", "errored"} if judged else {"refused"}
    stored = {k: v for k, v in files.items() if k.startswith("artifacts/")}
    stored_now = {k: v for k, v in files_now.items() if k.startswith("artifacts/")}
    versions_before = {version for _, _, version in events}
    checks = {
        f"production {alias} -> {alias_now}": alias_now != alias,
        "ledger rewritten": events_now[: len(events)] != events,
        f"events {events_now[len(events) :]}": any(
            event not in allowed for _, event, _ in events_now[len(events) :]
        ),
        "stored artifacts": any(stored_now.get(k) != v for k, v in stored.items())
        or (not judged and stored_now != stored),
        "a known version re-judged": judged
        and any(v in versions_before for _, _, v in events_now[len(events) :]),
    }
    return [what for what, changed in checks.items() if changed]


def test_reregistering_the_same_artifact_is_a_no_op(project):
    before = state(project)
    code, out = cli_in_process(project, "register", str(project["folders"]["v1"]))
    assert code == 0 and "already" in out.lower(), out
    assert not state_changes(before, state(project))
