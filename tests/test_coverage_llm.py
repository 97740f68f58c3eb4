"""`ml-release coverage` on an LLM spec: every LLM failure mode blocked, the control passes."""

import json
from pathlib import Path

import pytest
import yaml

from ml_release.cli import main
from ml_release.coverage.llm import prepare_llm
from ml_release.coverage.llm_modes import LLM_MODES
from ml_release.llm.groundedness import groundedness
from ml_release.llm.structured import check_structured
from ml_release.spec import load_spec
from tests.conftest import write_spec
from tests.test_coverage import _registry_state

PROJECT = Path(__file__).resolve().parents[1]
SPEC = PROJECT / "examples" / "rag" / "release.yaml"
DEMO = PROJECT / "ml_release" / "demo" / "rag"
JSON_GATES = ("llm_json_validity", "llm_schema_conformance")


def _demo_files() -> dict[str, bytes]:
    """The demo RAG set's prompts, recorded answers and data, byte for byte."""
    files = [p for p in sorted(DEMO.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    return {str(p.relative_to(DEMO)): p.read_bytes() for p in files}


def _blocked(matrix: str, title_start: str) -> list[str]:
    """The gates a matrix row shows as BLOCK."""
    header = next(line for line in matrix.splitlines() if line.startswith("| failure mode"))
    gates = [c.strip(" `") for c in header.split(" | ")[1:-2]]
    line = next(line for line in matrix.splitlines() if line.startswith(f"| {title_start}"))
    cells = [c.strip() for c in line.split(" | ")[1 : 1 + len(gates)]]
    return [g for g, c in zip(gates, cells, strict=True) if c == "BLOCK"]


@pytest.mark.slow
def test_every_llm_mode_is_blocked_and_the_real_registry_is_untouched(home, tmp_path, capsys):
    first = DEMO / "prompts" / "support-v1.yaml"
    assert main(["--spec", str(SPEC), "run", "--candidate", str(first)]) == 0  # real production
    before, demo = _registry_state("support_assistant"), _demo_files()
    out = tmp_path / "reports"

    code = main(["--spec", str(SPEC), "coverage", "--out", str(out)])

    printed = capsys.readouterr().out
    assert code == 0, printed
    assert _registry_state("support_assistant") == before
    assert _demo_files() == demo  # answers and configs went to the scratch folder only
    assert not any((home / "coverage").iterdir())  # the scratch home is removed
    matrix = (out / "coverage.md").read_text()
    assert f"{len(LLM_MODES)} of {len(LLM_MODES)} failure modes blocked" in matrix, matrix
    assert "control passed" in matrix and "NOT CAUGHT" not in matrix
    assert "<table>" in (out / "coverage.html").read_text()
    # Which gate catches what: the gate built for each fault says no, and only it blocks.
    assert _blocked(matrix, "control") == []
    assert _blocked(matrix, "ungrounded answers") == ["llm_groundedness_vs_baseline"]
    assert _blocked(matrix, "broken JSON") == list(JSON_GATES)
    assert _blocked(matrix, "schema violation") == ["llm_schema_conformance"]
    assert _blocked(matrix, "token-usage rise") == ["llm_tokens_vs_baseline"]
    assert _blocked(matrix, "slower first token") == ["llm_ttft_p95_vs_baseline"]


def test_without_the_json_gates_broken_json_is_uncovered(home, tmp_path, capsys):
    data = yaml.safe_load(SPEC.read_text())
    data["gates"] = [g for g in data["gates"] if g["name"] not in JSON_GATES]
    for key in ("dataset", "candidate", "responses"):
        data["llm"][key] = str((SPEC.parent / data["llm"][key]).resolve())
    spec = write_spec(tmp_path, data)
    out = tmp_path / "reports"
    args = ["--spec", str(spec), "coverage", "--modes", "broken_json", "--out", str(out)]

    assert main(args) == 1

    printed = capsys.readouterr().out
    assert "required but not blocked: broken_json" in printed
    matrix = (out / "coverage.md").read_text()
    assert "NOT CAUGHT (required)" in matrix and "control passed" in matrix


def test_the_injected_answers_carry_one_fault_each(home):
    bench = prepare_llm(load_spec(SPEC))
    modes = {mode.name: mode for mode in LLM_MODES}
    control = bench.control
    structured = bench.indices(structured=True)
    prose = bench.indices(structured=False)
    assert [r["answer"] for r in control] == [r["answer"] for r in bench.production]
    assert all(
        abs(c["ttft_ms"] / p["ttft_ms"] - 1) <= 0.0101
        for c, p in zip(control, bench.production, strict=True)
    )

    def changed(answers: list[dict]) -> list[int]:
        return [i for i, (a, c) in enumerate(zip(answers, control, strict=True)) if a != c]

    # Ungrounded: a quarter of the free-text answers state numbers the context does not hold.
    ungrounded = modes["ungrounded_answers"].inject(bench, 0.25)
    hit = changed(ungrounded)
    assert len(hit) == 12 and set(hit) <= set(prose)
    assert all(groundedness(ungrounded[i]["answer"], [bench.contexts[i]]).score < 1 for i in hit)
    # A stronger injection hits the same answers and more (a monotone sweep).
    assert set(hit) < set(changed(modes["ungrounded_answers"].inject(bench, 0.5)))
    # Broken JSON: not JSON any more, but the claims the proxy reads are unchanged.
    broken = modes["broken_json"].inject(bench, 0.25)
    assert len(changed(broken)) == 4 and set(changed(broken)) <= set(structured)
    for i in changed(broken):
        assert not check_structured(broken[i]["answer"], {}).json_valid
        assert groundedness(broken[i]["answer"], [bench.contexts[i]]).score == 1
    # Schema violation: still JSON, one required field fewer.
    violated = modes["schema_violation"].inject(bench, 0.25)
    for i in changed(violated):
        assert len(json.loads(violated[i]["answer"])) == len(json.loads(control[i]["answer"])) - 1
    # Token rise: every answer longer, tokens x1.5, nothing new the proxy could check.
    padded = modes["token_usage_rise"].inject(bench, 0.5)
    assert len(changed(padded)) == len(control)
    ratio = sum(r["completion_tokens"] for r in padded) / sum(
        r["completion_tokens"] for r in control
    )
    assert 1.45 < ratio < 1.55
    for i in structured:
        assert check_structured(padded[i]["answer"], {}).json_valid
    for i in prose:
        before = groundedness(control[i]["answer"], [bench.contexts[i]])
        after = groundedness(padded[i]["answer"], [bench.contexts[i]])
        assert after.score == before.score and len(after.checks) == len(before.checks)
    # Slower first token: ttft doubled, latency still after it.
    slower = modes["slower_first_token"].inject(bench, 1.0)
    assert all(s["ttft_ms"] <= s["latency_ms"] for s in slower)
    assert all(
        abs(s["ttft_ms"] - 2 * c["ttft_ms"]) < 0.02 for s, c in zip(slower, control, strict=True)
    )


def test_unknown_llm_modes_are_a_clear_error(home, tmp_path, capsys):
    assert main(["--spec", str(SPEC), "coverage", "--modes", "null_flood"]) == 2
    assert "unknown LLM failure mode(s) null_flood" in capsys.readouterr().out
    data = yaml.safe_load(SPEC.read_text())
    for key in ("dataset", "candidate", "responses"):
        data["llm"][key] = str((SPEC.parent / data["llm"][key]).resolve())
    data["coverage"] = {"required": ["null_flood"]}
    spec = write_spec(tmp_path, data)
    assert main(["--spec", str(spec), "coverage"]) == 2
    assert "coverage.required names null_flood" in capsys.readouterr().out


def test_without_a_recording_production_answers_come_from_the_endpoint(home, tmp_path, monkeypatch):
    from ml_release.llm.clients import read_recorded
    from tests.llm_support import start_server

    data = yaml.safe_load(SPEC.read_text())
    for key in ("dataset", "candidate"):
        data["llm"][key] = str((SPEC.parent / data["llm"][key]).resolve())
    del data["llm"]["responses"]
    spec = load_spec(write_spec(tmp_path, data))
    process, url = start_server()
    try:
        monkeypatch.setenv("ML_RELEASE_LLM_BASE_URL", url)
        bench = prepare_llm(spec)
    finally:
        process.kill()
        process.wait()

    recorded = read_recorded(DEMO / "responses" / "support-v2.jsonl")
    assert [r["answer"] for r in bench.production] == [
        recorded[q.id].answer for q in bench.rag.questions
    ]
    assert [r["completion_tokens"] for r in bench.production] == [
        recorded[q.id].completion_tokens for q in bench.rag.questions
    ]
