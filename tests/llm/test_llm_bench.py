"""`autoconn bench --inducer llm` measures a model: per task solved, rounds, calls, tokens, seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.pipeline.test_induce import LENGTH_TASK, RIGHT
from tests.support.openai_server import OpenAIServer, Reply

pytestmark = pytest.mark.slow

COUNT_B = [{"name": "count_b", "description": "number of b tokens, at every position"}] + [
    {"input": list(w), "output": w.count("b")}
    for w in ["a", "b", "ab", "bb", "aba", "bbb", "abba", "baab", "bbbab", "aabab", "babbba"]]


def test_bench_with_the_llm_reports_calls_and_tokens_per_task(tmp_path: Path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    write_jsonl(tasks / "length.jsonl", LENGTH_TASK)
    write_jsonl(tasks / "count_b.jsonl", COUNT_B)
    (tasks / "README.md").write_text("| task | tier |\n|---|---|\n| `length.jsonl` | easy |\n| `count_b.jsonl` | easy |\n")

    def respond(body: dict[str, Any]) -> Reply:
        user = body["messages"][1]["content"]
        return Reply.text(f"```python\n{RIGHT}```" if "# Task: length" in user else "I do not know.")

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTOCONN_"))}
    with OpenAIServer(respond) as server:
        result = subprocess.run([sys.executable, "-m", "autoconn.cli", "bench", str(tasks),
                                 "--inducer", "llm", "--sandbox", "process",
                                 "--model", "bench-model", "--base-url", server.base_url, "--samples", "2",
                                 "--budget", "60", "--max-attempts", "4", "--json"],
                                cwd=tmp_path, capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["task"]: row for row in report["tasks"]}
    assert rows["length"]["solved"] and rows["length"]["calls"] == 1 and rows["length"]["rounds"] == 1
    assert rows["length"]["tokens"] > 0 and rows["length"]["seconds"] > 0
    assert not rows["count_b"]["solved"] and rows["count_b"]["calls"] >= 2  # the first reply, then the no-code turns
    assert report["overall"] == {"solved": 1, "total": 2, "rate": 0.5}
    assert {body["model"] for body in server.chat_requests()} == {"bench-model"}
