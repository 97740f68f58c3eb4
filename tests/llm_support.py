"""A small OpenAI-compatible streaming server for tests, run as its own process on 127.0.0.1.

`python -m tests.llm_support --dataset DIR --port 0` answers `POST /v1/chat/completions` with
`stream: true` from the recorded answers of the demo RAG set: it recognises the prompt version
by its template and the question by its text, streams the answer in word chunks as server-sent
events, and ends with a usage chunk (when `stream_options.include_usage` is set) and
`data: [DONE]`. A request without `stream` is answered as an LLM judge would answer ragas'
`Faithfulness` prompts, deterministically. It prints `PORT <n>` once listening.
"""

import argparse
import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "ml_release" / "demo" / "rag"


def _load(dataset: Path) -> tuple[list[tuple[str, str]], dict[str, dict[str, dict]]]:
    import yaml

    prefixes = []
    for path in sorted((dataset / "prompts").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        prefixes.append((config["template"].split("{context}")[0], config["version"]))
    questions = {
        json.loads(line)["question"]: json.loads(line)["id"]
        for line in (dataset / "questions.jsonl").read_text().splitlines()
    }
    answers: dict[str, dict[str, dict]] = {}
    for path in (dataset / "responses").glob("*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        by_id = {r["question_id"]: r for r in rows}
        answers[path.stem] = {q: by_id[i] for q, i in questions.items()}
    return prefixes, answers


def serve(dataset: Path, port: int, first_token_delay: float, chunk_delay: float, usage: bool):
    """Serve until killed."""
    prefixes, answers = _load(dataset)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            user = body["messages"][-1]["content"]
            if not body.get("stream"):
                return self._judge(body, user)
            version = next(v for prefix, v in prefixes if user.startswith(prefix))
            question = user.rsplit("Question: ", 1)[1]
            record = answers[version][question]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            time.sleep(first_token_delay)
            words = record["answer"].split(" ")
            pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
            base = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
            }
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(chunk_delay)
                delta = {"content": piece, **({"role": "assistant"} if i == 0 else {})}
                self._event(
                    {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                )
            self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if usage and body.get("stream_options", {}).get("include_usage"):
                tokens = {
                    "prompt_tokens": record["prompt_tokens"],
                    "completion_tokens": record["completion_tokens"],
                }
                tokens["total_tokens"] = sum(tokens.values())
                self._event({**base, "choices": [], "usage": tokens})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _judge(self, body: dict, prompt: str) -> None:
            # A deterministic stand-in for an LLM judge answering ragas' Faithfulness prompts
            # (JSON mode): sentences as statements; a statement is faithful when all its
            # words of 4+ letters appear in the context.
            task = json.loads(prompt.rsplit("input: ", 1)[1].rsplit("Output:", 1)[0])
            if "answer" in task:
                sentences = [s for s in task["answer"].replace("!", ".").split(". ") if s]
                content = {"statements": [s.strip().rstrip(".") for s in sentences]}
            else:
                context = task["context"].lower()
                content = {
                    "statements": [
                        {
                            "statement": s,
                            "reason": "compared word by word",
                            "verdict": int(
                                all(w in context for w in s.lower().split() if len(w) > 3)
                            ),
                        }
                        for s in task["statements"]
                    ]
                }
            answer = {
                "id": "chatcmpl-judge",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": json.dumps(content)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _event(self, data: dict) -> None:
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


def start_server(
    first_token_delay_ms: float = 0.0, chunk_delay_ms: float = 0.0, usage: bool = True
) -> tuple[subprocess.Popen, str]:
    """Start the server process; returns it and its base URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.llm_support",
            "--dataset",
            str(DEMO),
            "--first-token-delay-ms",
            str(first_token_delay_ms),
            "--chunk-delay-ms",
            str(chunk_delay_ms),
            *([] if usage else ["--no-usage"]),
        ],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        process.wait()
        raise RuntimeError(f"the test LLM server did not start: {line!r}")
    return process, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def main() -> None:
    """Command line of the test server."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, default=DEMO)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-token-delay-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--no-usage", action="store_true")
    args = parser.parse_args()
    serve(
        args.dataset,
        args.port,
        args.first_token_delay_ms / 1000,
        args.chunk_delay_ms / 1000,
        not args.no_usage,
    )


if __name__ == "__main__":
    main()
