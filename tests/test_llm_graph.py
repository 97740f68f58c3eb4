"""The LLM release through the real asset graph: first release, a good and a bad candidate."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from ml_release import keys
from ml_release.definitions import build_definitions
from ml_release.home import artifacts_dir, registry_path
from ml_release.jobs import release_in_process
from ml_release.llm.candidate import read_config
from ml_release.llm.history import production_at
from ml_release.publish import publish_path
from ml_release.registry import PRODUCTION, Registry
from ml_release.rollback import next_known_good, rollback
from ml_release.spec import load_spec

PROJECT = Path(__file__).resolve().parents[1]
SPEC = PROJECT / "examples" / "rag" / "release.yaml"
PROMPTS = PROJECT / "ml_release" / "demo" / "rag" / "prompts"


@pytest.fixture()
def released(home):
    """Three releases on one instance: support-v1 (first), v2 (good), v3 (bad).

    v2 arrives as a published artifact folder (what the sensor passes), the others as files.
    """
    spec = load_spec(SPEC)
    defs = build_definitions(spec)
    instance = dg.DagsterInstance.ephemeral()
    sources = {
        "support-v1": PROMPTS / "support-v1.yaml",
        "support-v2": publish_path(
            PROMPTS / "support-v2.yaml", spec, Registry(registry_path()), tmp_quarantine(home)
        ),
        "support-v3": PROMPTS / "support-v3.yaml",
    }
    outcomes, times = {}, {}
    for version, source in sources.items():
        outcomes[version] = release_in_process(spec, source, defs, instance)
        times[version] = datetime.now(UTC)
    return spec, outcomes, Registry(registry_path()), times


def tmp_quarantine(home):
    return home / "quarantine"


def _verdicts(outcome) -> dict[str, str]:
    return {g["gate"]: g["verdict"] for g in outcome.gates}


def test_good_candidate_promoted_and_bad_blocked_then_rollback(released):
    spec, outcomes, registry, times = released
    name = spec.model.name
    first, good, bad = outcomes.values()
    assert first.exit_code == 0 and first.decision["decision"] == "promoted"
    assert good.exit_code == 0, good.gates
    assert good.decision["replaced"] == "support-v1"
    assert set(_verdicts(good).values()) == {"pass"}

    assert bad.exit_code == 1
    blocked = {g["gate"] for g in bad.blocked}
    assert {
        "llm_groundedness_vs_baseline",
        "llm_json_validity",
        "llm_schema_conformance",
        "llm_tokens_vs_baseline",
        "llm_ttft_p95_vs_baseline",
    } <= blocked
    assert registry.alias(name, PRODUCTION) == "support-v2"
    assert bad.decision == {}  # the blocking checks stopped release_decision

    promoted = registry.events(name, ("promoted",))
    assert [e.lineage[keys.PROMPT_VERSION] for e in promoted] == ["support-v1", "support-v2"]
    manifest = registry.version(name, "support-v2").manifest
    assert manifest["kind"] == "llm_config"
    assert manifest["extra"][keys.PROMPT_VERSION] == "support-v2"

    assert production_at(registry, name, times["support-v1"]) == "support-v1"
    assert production_at(registry, name, times["support-v3"]) == "support-v2"
    outcome = rollback(registry, artifacts_dir(), name, reason="test")
    assert outcome.target == "support-v1"
    live = registry.version(name, registry.alias(name, PRODUCTION))
    assert read_config(artifacts_dir() / live.path, live.digest).version == "support-v1"
    assert next_known_good(registry, artifacts_dir(), name) is None  # v2 was rolled away from
    assert registry.problems(name) == []
    assert production_at(registry, name, datetime.now(UTC)) == "support-v1"
    assert production_at(registry, name, datetime(2000, 1, 1, tzinfo=UTC)) is None
