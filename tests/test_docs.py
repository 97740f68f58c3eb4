"""Documentation that cannot drift: the gate reference, UI descriptions, CLI help, runnable docs.

- docs/gates.md is exactly `ml-release gates`, and every catalog gate documents its
  parameters, verdict rule and a valid example;
- docs/reliability.md lists exactly the reliability suite's cases, none of them failed;
- every asset, asset check, job and sensor has a one-line description (it is UI text);
- `ml-release --help` and every subcommand's `--help` work and every argument has help;
- every ```bash block of README.md and docs/tutorial.md runs, in order, in a scratch copy of the
  project. `make demo` and `make test` (minutes long; `make test` *is* CI) and `make ui` (a
  server) are not run: each `make TARGET` line must name a Makefile target whose recipe's
  commands exist. Annotations, written on the line before a block:
  `<!-- docs-test: exit N (why) -->` (the block must exit with N) and
  `<!-- docs-test: skip (why) -->` (not run; keep this list tiny).
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ml_release.cli import build_parser
from ml_release.gates.catalog import CATALOG, catalog_markdown, example_yaml
from tests.conftest import PROJECT, spec_dict, write_spec

RUNNABLE_DOCS = ("README.md", "docs/tutorial.md")
BLOCK = re.compile(r"(?:<!-- docs-test: (?P<note>[^>]*?) -->\n)?```bash\n(?P<body>.*?)```", re.S)
NOT_COPIED = {".venv", ".ml_release", ".git", "reports", "__pycache__", ".pytest_cache"}
MAKE_NOT_RUN = {"demo", "test", "ui", "install", "reliability", "check"}


# -- the gate reference ----------------------------------------------------------------------
def test_docs_gates_md_is_the_generated_reference():
    committed = (PROJECT / "docs" / "gates.md").read_text()
    assert committed.rstrip("\n") == catalog_markdown().rstrip("\n"), (
        "docs/gates.md is out of date: run `.venv/bin/ml-release gates > docs/gates.md`"
    )


@pytest.mark.slow
def test_docs_reliability_md_lists_every_case_of_the_suite_and_none_failed():
    from tests.reliability_report import collected_cases

    doc = (PROJECT / "docs" / "reliability.md").read_text()
    listed = re.findall(r"^\| `([^`]+::[^`]+)` \| (.+) \|$", doc, re.M)
    stale = "docs/reliability.md is out of date: run `make reliability`"
    assert sorted(nodeid for nodeid, _ in listed) == collected_cases(), stale
    assert not [nodeid for nodeid, outcome in listed if outcome.startswith("**")], doc
    assert "state changes seen" in doc


def test_every_catalog_gate_is_in_the_reference_with_its_parameters():
    reference = catalog_markdown()
    for gate in CATALOG.values():
        section = reference.split(f"### `{gate.name}`\n", 1)
        assert len(section) == 2, f"{gate.name} has no section in docs/gates.md"
        body = section[1].split("\n### ", 1)[0]
        for name in gate.params.model_fields:
            assert f"| `{name}` |" in body, f"{gate.name}: parameter {name} is not documented"
        assert "**Verdict.**" in body and f"- name: {gate.name}" in body


def test_every_catalog_gate_has_a_verdict_rule_and_an_example():
    missing = sorted(
        f"{g.name} ({g.family})"
        for g in CATALOG.values()
        if not g.verdict_rule or g.example is None
    )
    assert not missing, (
        "give these GateDefinition entries `verdict_rule=` (when pass / fail / inconclusive) "
        "and `example=` (the parameters of a typical gates: entry), then regenerate "
        "docs/gates.md: " + ", ".join(missing)
    )


def test_every_documented_example_is_valid_for_its_gate():
    for gate in (g for g in CATALOG.values() if g.example is not None):
        [entry] = yaml.safe_load(example_yaml(gate))
        params = {k: v for k, v in entry.items() if k not in ("name", "must_pass")}
        gate.params(**params)  # the example is valid for the gate's parameter model


# -- descriptions (UI text) ------------------------------------------------------------------
def _ui_objects(defs) -> list[tuple[str, str | None]]:
    graph = defs.resolve_asset_graph()
    objects = [
        (f"asset {k.to_user_string()}", graph.get(k).description)
        for k in graph.get_all_asset_keys()
    ]
    objects += [
        (f"check {k.to_user_string()}", graph.get(k).description) for k in graph.asset_check_keys
    ]
    objects += [
        (f"job {job.name}", job.description)
        for job in defs.resolve_all_job_defs()
        if not job.name.startswith("__")  # Dagster's implicit asset job
    ]
    objects += [(f"sensor {s.name}", s.description) for s in defs.sensors]
    return objects


@pytest.mark.parametrize("canary", [False, True], ids=["release.yaml", "canary"])
def test_every_asset_check_job_and_sensor_has_a_one_line_description(tmp_path, canary):
    from ml_release.definitions import build_definitions
    from ml_release.spec import load_spec

    if canary:
        spec = load_spec(write_spec(tmp_path, spec_dict(serving=True, canary={"enabled": True})))
    else:
        spec = load_spec(PROJECT / "release.yaml")
    objects = _ui_objects(build_definitions(spec))
    assert any(name.startswith("check ") for name, _ in objects)
    bad = [name for name, text in objects if not text or "\n" in text.strip()]
    assert not bad, f"no one-line description: {bad}"
    if canary:
        assert "asset canary_rollout" in dict(objects)


# -- command-line help -----------------------------------------------------------------------
def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_cli_argument_has_help():
    parser = build_parser()
    parsers = {"ml-release": parser, **_subcommands(parser)}
    for name, command in parsers.items():
        if command is not parser:
            assert command.description, f"`ml-release {name} --help` has no description"
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            assert action.help, f"ml-release {name}: {action.option_strings or action.dest}"


@pytest.mark.slow
def test_help_of_every_subcommand_exits_0():
    script = shutil.which("ml-release", path=str(Path(sys.executable).parent))
    for command in ["", *_subcommands(build_parser())]:
        done = subprocess.run(
            [script, *command.split(), "--help"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (command, done.stderr)
        assert "usage: ml-release" in done.stdout
    assert "exit codes" in subprocess.run([script, "--help"], capture_output=True, text=True).stdout


# -- links -----------------------------------------------------------------------------------
def test_every_relative_link_and_image_of_the_docs_exists():
    broken = []
    for doc in [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]:
        for match in re.finditer(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            target = match[1]
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(PROJECT)}: {target}")
    assert not broken, broken


def test_readme_shows_a_screenshot_taken_by_the_browser_test():
    images = re.findall(
        r"!\[[^\]]*\]\((docs/images/[^)]+\.png)\)", (PROJECT / "README.md").read_text()
    )
    assert images and all((PROJECT / image).stat().st_size > 10_000 for image in images)


# -- runnable documentation ------------------------------------------------------------------
def blocks(doc: str) -> list[tuple[str, str]]:
    """(annotation, body) of every ```bash block of a document, in order."""
    text = (PROJECT / doc).read_text()
    return [(m["note"] or "", m["body"]) for m in BLOCK.finditer(text)]


def make_targets() -> dict[str, list[str]]:
    """Makefile targets and their recipe lines."""
    targets: dict[str, list[str]] = {}
    current = None
    for line in (PROJECT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z][\w-]*):", line)
        if match:
            current = match[1]
            targets[current] = []
        elif line.startswith("\t") and current:
            targets[current].append(line.strip())
    return targets


def _check_make_line(line: str, targets: dict[str, list[str]]) -> None:
    target = shlex.split(line.split("#", 1)[0])[1]
    assert target in targets, f"`make {target}` is not a Makefile target"
    assert target in MAKE_NOT_RUN, f"`make {target}` should run in the docs test instead"
    for recipe in targets[target]:
        for word in re.findall(r"\$\(BIN\)/([\w-]+)", recipe):
            assert (PROJECT / ".venv" / "bin" / word).exists(), f"make {target}: no {word}"


def _scratch_project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(
        PROJECT,
        copy,
        ignore=lambda folder, names: [n for n in names if n in NOT_COPIED or n.endswith(".duckdb")],
    )
    (copy / ".venv").symlink_to(PROJECT / ".venv")
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE_DOCS)
def test_every_command_of_the_doc_runs(doc, tmp_path):
    project = _scratch_project(tmp_path)
    targets = make_targets()
    state = tmp_path / "env.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_RELEASE_", "DAGSTER_"))}
    env["ML_RELEASE_HOME"] = str(project / ".ml_release")
    found = blocks(doc)
    assert found, f"{doc} has no bash block"
    for note, body in found:
        if note.startswith("skip"):
            continue
        expected = int(re.match(r"exit (\d+)", note)[1]) if note.startswith("exit") else 0
        commands = [line for line in body.splitlines() if line.strip()]
        if all(line.startswith("make ") for line in commands):
            for line in commands:
                _check_make_line(line, targets)
            continue
        # One shell per block; exported variables carry over to the next block, as in a terminal.
        script = (
            f'[ -f "{state}" ] && . "{state}"\n'
            f"trap 'export -p > \"{state}\"' EXIT\n"
            f"set -eo pipefail\n{body}"
        )
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == expected, (
            f"{doc}: block exited {done.returncode}, expected {expected}:\n{body}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
