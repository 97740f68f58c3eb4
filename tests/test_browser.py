"""The Dagster UI path in a real browser: Playwright drives Debian's Chromium against `dg dev`.

One user story, step by step, on a temporary `ML_RELEASE_HOME` and `DAGSTER_HOME`:

1. the asset graph shows the five groups and `production_model`;
2. with the artifact sensor turned on in the UI, the `train_candidate` job launched from the UI
   publishes the spec's model; the sensor adds its partition and launches its release run; the
   run succeeds and production moves;
3. the asset checks tab shows each gate's verdict and evidence, and the evaluation plots render;
4. the sensor launches a run for an artifact published with `ml-release register` (a candidate
   that scores NaN);
5. the checks tab shows the gate that blocked it and its evidence; production did not move, and
   the daemon's `blocked_release_sensor` writes the block to the ledger (`ml-release history`);
6. `production_model`'s history names the known-good version and what replaced it;
7. the `rollback` job, launched from the UI, moves production back (`ml-release status`) and
   materializes `production_model`.

Screenshots of every step go to `$ML_RELEASE_BROWSER_SHOTS` (default `reports/browser/`), also
when a step fails. Production started on a small gradient-boosting model released with
`ml-release run` before the UI starts, so there is a known-good version to come back to.
"""

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from ml_release.demo.generate import generate, write_demo_data
from ml_release.home import INSTANCE_CONFIG
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, DagsterDev
from tests.conftest import PROJECT, spec_dict

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(os.environ.get("ML_RELEASE_BROWSER_SHOTS") or PROJECT / "reports" / "browser")
GROUPS = ("data", "features", "models", "evaluation", "release")
LOCATION = "ml_release"
MODEL = "credit_default"
BLOCKED_VERSION = "nan-scores"
RUN_TIMEOUT = 420.0  # a release run under `dagster dev` takes ~45 s on 2 cores, minutes when busy
UI_TIMEOUT = 30_000  # ms


def _browser_missing() -> bool:
    return not CHROMIUM.exists()


if _browser_missing() and os.environ.get("CI") != "true":
    pytest.skip(
        f"{CHROMIUM} is missing: `apt-get install -y chromium` (CI installs it and never skips)",
        allow_module_level=True,
    )


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("ml-release")
    return subprocess.run(
        [str(script), *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300
    )


def _blocked_artifact(spec_file: Path, data, folder: Path) -> Path:
    """A gradient-boosting candidate with NaN in two leaves: some rows score NaN."""
    from ml_release.demo.features import REQUIRED_COLUMNS
    from ml_release.demo.model_scenarios import nan_outputs
    from ml_release.model import build_pipeline
    from ml_release.publish import publish_candidate
    from ml_release.spec import load_spec

    spec = load_spec(spec_file)
    model = build_pipeline(
        spec.features.code,
        spec.features.numeric,
        spec.features.categorical,
        "hist_gradient_boosting",
        {"max_iter": 20, "max_depth": 2},
    ).fit(data.training[list(REQUIRED_COLUMNS)], data.training[spec.data.label])
    return publish_candidate(
        nan_outputs(model, leaves=2), spec, version=BLOCKED_VERSION, home=folder
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Iterator[dict]:
    """Small demo data, the spec without serving gates, and a first production model."""
    if _browser_missing():
        pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs it with apt-get")
    root = tmp_path_factory.mktemp("browser")
    env = {
        **os.environ,
        "ML_RELEASE_HOME": str(root / "home"),
        "DAGSTER_HOME": str(root / "dagster"),
        "ML_RELEASE_SPEC": str(root / "release.yaml"),
        "PYTHONUNBUFFERED": "1",
    }
    (root / "dagster").mkdir()
    (root / "dagster" / "dagster.yaml").write_text(INSTANCE_CONFIG)  # telemetry off
    data = generate(seed=11, n_training=6000, n_evaluation=20_000, n_serving=2000)
    write_demo_data(root / "home" / "demo", data)
    (root / "release.yaml").write_text(yaml.safe_dump(spec_dict(), sort_keys=False))
    weak = spec_dict()
    weak["model"].update(
        estimator="hist_gradient_boosting", params={"max_iter": 25, "max_depth": 2}
    )
    (root / "weak.yaml").write_text(yaml.safe_dump(weak, sort_keys=False))
    first = _cli(env, "--spec", str(root / "weak.yaml"), "run")
    assert first.returncode == 0, first.stdout + first.stderr
    known_good = re.search(r"PROMOTED (\S+) to production", first.stdout).group(1)
    blocked = _blocked_artifact(root / "release.yaml", data, root / "published")
    yield {"root": root, "env": env, "known_good": known_good, "blocked": blocked}


@pytest.fixture(scope="module")
def dagster_dev(project) -> Iterator[DagsterDev]:
    """`dg dev` (webserver and daemon) for the project, as `make ui`, stopped whatever happens."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    server = DagsterDev(PROJECT, project["env"], SHOTS / "dagster-dev.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        assert server.alive() == [], "processes of dg dev survived"


@pytest.fixture(scope="module")
def page(dagster_dev):
    """A Chromium page on the webserver; the first-visit community dialog is skipped."""
    from playwright.sync_api import expect, sync_playwright

    # `expect` has its own timeout (5 s), apart from the page's: on a busy CI machine the UI's
    # queries for a freshly materialized asset can take longer than that.
    expect.set_options(timeout=UI_TIMEOUT)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT)
            page.add_locator_handler(
                page.get_by_text("Join the Dagster community"),
                lambda: page.get_by_role("button", name="Skip").click(),
            )
            yield page
        finally:
            browser.close()


@contextmanager
def step(page, name: str):
    """A named step: its screenshot is saved whether it passes or fails."""
    try:
        yield
    except BaseException:
        page.screenshot(path=str(SHOTS / f"{name}-FAILED.png"), full_page=True)
        raise
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def _open(page, server: DagsterDev, path: str) -> None:
    page.goto(server.url + path, wait_until="domcontentloaded")


def _status(env: dict) -> str:
    status = _cli(env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    return status.stdout


def _blocked_in_history(env: dict) -> bool:
    lines = _cli(env, "history").stdout.splitlines()
    return any("blocked" in line and BLOCKED_VERSION in line for line in lines)


def test_release_gates_through_the_dagster_ui(project, dagster_dev, page):
    from playwright.sync_api import expect

    started = time.monotonic()
    server, env = dagster_dev, project["env"]
    for old in SHOTS.glob("*.png"):
        old.unlink()

    with step(page, "01-asset-graph"):
        _open(page, server, "/asset-groups")
        expect(page.get_by_role("button", name="Materialize all")).to_be_visible()  # loaded
        page.keyboard.press("Alt+e")  # expand all groups
        for group in GROUPS:
            expect(page.get_by_role("button", name=group, exact=False).first).to_be_visible()
        for asset in ("release_decision", "training_snapshot", "production_model"):
            expect(page.get_by_text(asset, exact=True).first).to_be_visible()
        page.mouse.move(0, 0)
        page.wait_for_timeout(2000)  # let the materialization states colour the nodes

    with step(page, "02-train-and-release"):
        _open(page, server, f"/locations/{LOCATION}/sensors/new_model_artifact_sensor")
        switch = page.get_by_role("checkbox").first
        expect(switch).not_to_be_checked()
        page.locator("label").filter(has=switch).click()  # the input itself is hidden
        expect(switch).to_be_checked()
        before = {r["runId"] for r in server.runs()}
        _open(page, server, f"/locations/{LOCATION}/jobs/train_candidate/playground")
        page.get_by_role("button", name="Launch run").click()
        trained = server.wait_for_run(
            lambda r: r["runId"] not in before and r["jobName"] == "train_candidate", RUN_TIMEOUT
        )
        assert trained["status"] == "SUCCESS", trained
        run = server.wait_for_run(
            lambda r: r["runId"] not in before and r["jobName"] == "release", RUN_TIMEOUT
        )
        assert run["tags"].get("dagster/sensor_name") == "new_model_artifact_sensor", run
        assert run["status"] == "SUCCESS", run
        _open(page, server, f"/runs/{run['runId']}")
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        expect(page.get_by_text("release_decision").first).to_be_visible()
        promoted = _status(env)
        assert f"rollback target {project['known_good']}" in promoted, promoted
        released = re.search(r"production (\S+), rollback target", promoted).group(1)

    with step(page, "03-gate-checks"):
        _open(page, server, "/assets/evaluation_report?view=checks")
        for gate in ("roc_auc_vs_baseline", "segment_roc_auc_vs_baseline", "valid_predictions"):
            expect(page.get_by_text(gate, exact=True).first).to_be_visible()
        page.get_by_text("roc_auc_vs_baseline", exact=True).first.click()
        expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
        for field in ("observed", "baseline", "delta", "interval_low", "threshold", "direction"):
            expect(page.get_by_text(field, exact=True).first).to_be_visible()

    with step(page, "03b-evaluation-plot"):
        _open(page, server, "/assets/evaluation_report?view=events")
        row = page.locator("tr").filter(has_text="reliability (holdout)").first
        expect(row).to_be_visible()
        # Plots are files beside the run's HTML report, not base64 in the event log.
        assert "reliability_holdout.png" in row.inner_text(), row.inner_text()
        plots = list((project["root"] / "home" / "reports").glob("*/reliability_holdout.png"))
        assert plots and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)

    with step(page, "04-sensor-run"):
        registered = _cli(env, "register", str(project["blocked"]))
        assert registered.returncode == 0, registered.stdout + registered.stderr
        sensed = server.wait_for_run(
            lambda r: r["tags"].get("candidate_version") == BLOCKED_VERSION, RUN_TIMEOUT
        )
        assert sensed["tags"].get("dagster/sensor_name") == "new_model_artifact_sensor", sensed
        assert sensed["status"] == "FAILURE", sensed  # a blocking check failed
        _open(page, server, f"/locations/{LOCATION}/sensors/new_model_artifact_sensor")
        page.get_by_role("button", name="Runs", exact=True).click()
        expect(page.get_by_text(sensed["runId"][:8]).first).to_be_visible()

    with step(page, "05-blocked-gate"):
        _open(page, server, "/assets/evaluation_report?view=checks")
        page.get_by_text("valid_predictions", exact=True).first.click()
        expect(page.get_by_text("Failed", exact=True).first).to_be_visible()
        expect(page.get_by_text(BLOCKED_VERSION, exact=True).first).to_be_visible()
        expect(page.get_by_text("fail", exact=True).first).to_be_visible()  # verdict
        assert f"production {released}, rollback target" in _status(env)  # did not move
        # The daemon's blocked_release_sensor (on by default) writes the block to the ledger.
        deadline = time.monotonic() + RUN_TIMEOUT
        while not _blocked_in_history(env) and time.monotonic() < deadline:
            time.sleep(3)
        assert _blocked_in_history(env), _cli(env, "history").stdout

    with step(page, "06-production-history"):
        _open(page, server, "/assets/production_model?view=events")
        expect(page.get_by_text(project["known_good"]).first).to_be_visible()
        expect(page.get_by_text(released).first).to_be_visible()
        expect(page.get_by_text("replaced", exact=True).first).to_be_visible()
        expect(page.get_by_text("rollback_target", exact=True).first).to_be_visible()
        page.screenshot(path=str(SHOTS / "06-production-history-events.png"))
        _open(page, server, "/assets/production_model?view=lineage")
        expect(page.get_by_text("release_decision").first).to_be_visible()

    with step(page, "07-rollback"):
        _open(page, server, f"/locations/{LOCATION}/jobs/rollback/playground")
        page.get_by_role("button", name="Launch run").click()
        rollback = server.wait_for_run(lambda r: r["jobName"] == "rollback", RUN_TIMEOUT)
        assert rollback["status"] == "SUCCESS", rollback
        _open(page, server, f"/runs/{rollback['runId']}")
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        moved = f"{MODEL} production is now {project['known_good']}"
        expect(page.get_by_text(moved).first).to_be_visible()
        status = _status(env)
        assert f"production {project['known_good']}" in status, status
        _open(page, server, "/assets/production_model?view=events")
        expect(page.get_by_text("rolled_back").first).to_be_visible()

    elapsed = time.monotonic() - started
    print(f"browser steps took {elapsed:.0f} s; screenshots in {SHOTS}")
