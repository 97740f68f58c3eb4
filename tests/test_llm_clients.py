"""Generation clients: a real streaming endpoint against the recordings, and no network."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ml_release.errors import DataInputError
from ml_release.gates.catalog import CATALOG
from ml_release.llm.clients import (
    GenerationError,
    GenerationRequest,
    OpenAICompatibleClient,
    ReplayClient,
)
from ml_release.llm.config import load_config
from ml_release.llm.dataset import RagSet, load_rag_set
from ml_release.llm.gates import JUDGES
from ml_release.llm.judge import FaithfulnessJudge
from ml_release.llm.run import evaluate_release
from ml_release.llm.spec import LLMSpec
from tests.llm_support import DEMO, PROJECT, start_server

RESPONSES = DEMO / "responses"
SETTINGS = LLMSpec(
    dataset=str(DEMO),
    candidate="x",
    pricing={"demo-chat-small": {"input_per_million": 0.15, "output_per_million": 0.6}},
)
TIMING = ("ttft_ms", "latency_ms")


@pytest.fixture(scope="module")
def rag():
    """The demo RAG set."""
    return load_rag_set(DEMO)


@pytest.fixture()
def server():
    """The streaming test server (no delays), stopped after the test."""
    process, url = start_server()
    yield url
    process.kill()
    process.wait()


def _config(version: str):
    return load_config(DEMO / "prompts" / f"{version}.yaml")


def _verdicts(report) -> dict[str, str]:
    out = {}
    for name, judge in JUDGES.items():
        if name == "llm_judge_faithfulness" or name.startswith("llm_ttft") or "latency" in name:
            continue
        gate = SimpleNamespace(
            name=name, target="llm_evaluation_report", params=CATALOG[name].params()
        )
        out[name] = judge(gate, report).verdict.value
    return out


def test_streaming_and_replay_give_the_same_report(rag, server):
    replay = evaluate_release(
        rag, _config("support-v3"), _config("support-v1"), ReplayClient(RESPONSES), SETTINGS
    )
    streamed = evaluate_release(
        rag,
        _config("support-v3"),
        _config("support-v1"),
        OpenAICompatibleClient(server, api_key="test"),
        SETTINGS,
    )
    for role in ("candidate", "production"):
        a, b = getattr(replay, role), getattr(streamed, role)
        pd.testing.assert_frame_equal(a.drop(columns=list(TIMING)), b.drop(columns=list(TIMING)))
        assert (b["ttft_ms"] > 0).all() and (b["ttft_ms"] <= b["latency_ms"]).all()
    assert _verdicts(replay) == _verdicts(streamed)
    assert _verdicts(replay)["llm_json_validity"] == "fail"


def test_time_to_first_token_and_latency_are_measured_while_streaming(rag):
    process, url = start_server(first_token_delay_ms=120, chunk_delay_ms=10)
    try:
        config = _config("support-v1")
        question = rag.questions[0]
        context = [rag.passages[question.reference_context_ids[0]].text]
        request = GenerationRequest(question.id, config.render(question.question, context))
        (generation,) = OpenAICompatibleClient(url, "k").generate(config, [request])
    finally:
        process.kill()
        process.wait()
    recorded = ReplayClient(RESPONSES).generate(config, [request])[0]
    chunks = len(recorded.answer.split(" "))
    assert generation.answer == recorded.answer
    assert (generation.prompt_tokens, generation.completion_tokens) == (
        recorded.prompt_tokens,
        recorded.completion_tokens,
    )
    assert generation.ttft_ms >= 120
    assert generation.latency_ms >= generation.ttft_ms + 10 * (chunks - 1)


def test_the_llm_judge_runs_k_times_through_the_endpoint_and_blocks_the_bad_prompt(rag, server):
    few = RagSet(rag.passages, [q for q in rag.questions if q.route != "ticket"][::6], rag.schemas)
    settings = SETTINGS.model_copy(update={"judge_runs": 2})
    judge = FaithfulnessJudge(server, "test", "judge-model")
    client = OpenAICompatibleClient(server, api_key="test")
    report = evaluate_release(
        few, _config("support-v3"), _config("support-v1"), client, settings, judge
    )
    assert report.judge.candidate.shape == (len(few.questions), 2)
    assert (report.judge.production == 1.0).all()
    gate = SimpleNamespace(
        name="llm_judge_faithfulness",
        target="llm_evaluation_report",
        params=CATALOG["llm_judge_faithfulness"].params(),
    )
    result = JUDGES["llm_judge_faithfulness"](gate, report)
    assert result.verdict.value == "fail" and result.support["runs"] == 2
    assert report.judge.candidate.mean() < 0.8


def test_an_endpoint_without_usage_is_an_error_not_zero_tokens(rag):
    process, url = start_server(usage=False)
    try:
        config = _config("support-v1")
        question = rag.questions[0]
        request = GenerationRequest(question.id, config.render(question.question, ["x"]))
        with pytest.raises(GenerationError, match="include_usage"):
            OpenAICompatibleClient(url, "k").generate(config, [request])
    finally:
        process.kill()
        process.wait()


def test_an_unreachable_endpoint_raises_with_what_to_check(rag):
    config = _config("support-v1")
    request = GenerationRequest("q", config.render("question?", ["context"]))
    client = OpenAICompatibleClient("http://127.0.0.1:9/v1", "k", timeout_seconds=2)
    with pytest.raises(GenerationError, match="Check the endpoint"):
        client.generate(config, [request])


def test_replay_names_the_file_and_line_of_bad_recordings(tmp_path):
    config = _config("support-v1")
    request = GenerationRequest("q1", [])
    (tmp_path / "support-v1.jsonl").write_text(
        json.dumps(
            {
                "question_id": "q1",
                "answer": "a",
                "prompt_tokens": 3,
                "completion_tokens": -1,
                "ttft_ms": 1,
                "latency_ms": 2,
            }
        )
        + "\n"
    )
    with pytest.raises(DataInputError, match=r"support-v1.jsonl:1: token counts"):
        ReplayClient(tmp_path).generate(config, [request])
    (tmp_path / "support-v1.jsonl").write_text(
        json.dumps(
            {
                "question_id": "q2",
                "answer": "a",
                "prompt_tokens": 3,
                "completion_tokens": 1,
                "ttft_ms": 1,
                "latency_ms": 2,
            }
        )
        + "\n"
    )
    with pytest.raises(DataInputError, match="no answer for 1 questions"):
        ReplayClient(tmp_path).generate(config, [request])


NO_NETWORK = textwrap.dedent(
    """
    import socket
    attempts = []
    real_connect = socket.socket.connect
    def guarded(self, address):
        attempts.append(address)
        raise OSError("network disabled by the test")
    socket.socket.connect = guarded
    socket.create_connection = lambda *a, **k: guarded(None, a[0] if a else None)
    import os
    from pathlib import Path
    from ml_release.llm.clients import ReplayClient
    from ml_release.llm.config import load_config
    from ml_release.llm.dataset import load_rag_set
    from ml_release.llm.run import evaluate_release
    from ml_release.llm.spec import LLMSpec
    demo = Path("ml_release/demo/rag")
    report = evaluate_release(
        load_rag_set(demo),
        load_config(demo / "prompts/support-v2.yaml"),
        load_config(demo / "prompts/support-v1.yaml"),
        ReplayClient(demo / "responses"),
        LLMSpec(dataset=str(demo), candidate="x"),
    )
    print(len(report.candidate), os.environ["RAGAS_DO_NOT_TRACK"], attempts)
    """
)


def test_evaluation_makes_no_network_call():
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAGAS_DO_NOT_TRACK"}
    done = subprocess.run(
        [sys.executable, "-c", NO_NETWORK],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "RAGAS_DO_NOT_TRACK": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["64", "true", "[]"]


def test_recorded_timings_are_finite_and_ordered():
    for path in Path(RESPONSES).glob("*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        ttft = np.array([r["ttft_ms"] for r in rows])
        assert (ttft > 0).all() and (ttft <= [r["latency_ms"] for r in rows]).all()
