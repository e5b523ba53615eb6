"""`autoconn induce --inducer llm` end to end against a real OpenAI-compatible HTTP server on
127.0.0.1 (tests/support/openai_server.py): the real `openai` client, its retries and timeouts,
the real sandbox and tracr. Each test scripts the model's replies and asserts on the outcome
and on what the server received."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autoconn.inducers.llm.prompt import show_sequence
from autoconn.task import load_task, split_task
from tests.conftest import FIXTURE_LIBRARY, write_jsonl
from tests.pipeline.test_induce import LENGTH_TASK, ONLY_SHORT, RIGHT, WRONG_CONSTANT
from tests.support.openai_server import OpenAIServer, Reply, scripted

pytestmark = pytest.mark.slow

RIGHT_BUT_BIGGER = """from tracr.rasp import rasp
width = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("width")
program = rasp.Map(lambda n: n + 0, width).named("length_again")
"""


def fenced(source: str, prose: str = "Here is the program.") -> str:
    return f"{prose}\n\n```python\n{source}```\n"


@pytest.fixture
def length_task(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "length.jsonl", LENGTH_TASK)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A copy of the verified library, so few-shot demonstrations have something to choose from."""
    target = tmp_path / "lib"
    shutil.copytree(FIXTURE_LIBRARY, target)
    return target


def induce(server: OpenAIServer, task: Path, cwd: Path, *extra: str, env: dict[str, str] | None = None,
           inducer: str = "llm", timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTOCONN_"))}
    environment |= {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test", "AUTOCONN_MODEL": "test-model",
                    "AUTOCONN_LLM_RETRIES": "2", "AUTOCONN_LLM_TIMEOUT": "30"} | (env or {})
    result = subprocess.run([sys.executable, "-m", "autoconn.cli", "induce", str(task), "--inducer", inducer,
                             "--sandbox", "process", "--out", "lib", "--samples", "1", "--budget", "300", "--json", *extra],
                            cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)
    summary = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result, summary


def all_text(server: OpenAIServer) -> str:
    return "\n".join(m["content"] for body in server.chat_requests() for m in body["messages"])


def assert_no_sealed_example_sent(server: OpenAIServer, task: Path) -> None:
    """No sealed input ever reaches the model: not as an example line, not as a counterexample.
    (Validation examples may: their counterexamples are repair feedback, for every inducer alike.)"""
    split = split_task(load_task(task))
    sent = all_text(server)
    shown = [e for e in split.induction if f"{show_sequence(e.inputs)} ->" in sent]
    assert shown, "the induction examples should be in the prompt (else this check proves nothing)"
    for example in split.sealed:
        text = show_sequence(example.inputs)
        assert f"{text} ->" not in sent and f"input {text}:" not in sent, f"sealed example {text} was sent"


def test_correct_answer_is_verified_with_primer_and_library_examples(tmp_path: Path, length_task: Path, library: Path):
    with OpenAIServer(scripted(Reply.text(fenced(RIGHT)))) as server:
        result, summary = induce(server, length_task, tmp_path, "--name", "count_tokens")
    assert result.returncode == 0, result.stderr + result.stdout
    assert summary["status"] == "verified" and summary["inducer"] == "llm" and summary["heldout_accuracy"] == 1.0
    usage = summary["inducer_usage"]["llm"]
    assert usage["calls"] == 1 and usage["rounds"] == 1 and usage["tokens"] > 0 and usage["model"] == "test-model"
    request = server.chat_requests()[0]
    assert request["model"] == "test-model"
    system, user = request["messages"][0]["content"], request["messages"][1]["content"]
    assert "Rules of this compiler" in system and "SelectorWidth is" not in system  # the primer, from prompts/
    assert "rasp.length` itself does NOT compile" in system
    assert server.auth_headers[0] == "Bearer sk-test"
    # Few-shot demonstrations come from the library, with their verified source.
    demo_names = [line.split(": ", 1)[1] for line in user.splitlines() if line.startswith("# Verified example: ")]
    assert len(demo_names) == 3 and all((library / name / "program.py").exists() for name in demo_names)
    assert "length" in demo_names  # closest: same output shape, kind and vocab kind, shared words
    length_source = (library / "length" / "program.py").read_text()
    assert "rasp.SelectorWidth" in user and "Found by" not in user and "Found by" in length_source
    assert_no_sealed_example_sent(server, length_task)
    registered = json.loads((library / "count_tokens" / "conn.json").read_text())
    assert (registered["provenance"]["inducer"] == "llm"
            and registered["verified"]["sealed"]["correct"] == len(split_task(load_task(length_task)).sealed))


def test_wrong_program_then_repair_from_counterexamples(tmp_path: Path, length_task: Path):
    replies = iter([Reply.text(fenced(WRONG_CONSTANT)), Reply.text(fenced(RIGHT))])
    with OpenAIServer(lambda body: next(replies)) as server:
        result, summary = induce(server, length_task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert summary["attempts"] == 2 and summary["inducer_usage"]["llm"]["rounds"] == 2
    first, repair = server.chat_requests()
    assert len(repair["messages"]) == len(first["messages"]) + 2
    assert repair["messages"][-2] == {"role": "assistant", "content": f"```python\n{WRONG_CONSTANT.strip()}\n```"}
    turn = repair["messages"][-1]["content"]
    assert "rejected at the check stage" in turn and "Counterexamples:" in turn
    # the shortest counterexample, with what it got (one value: a broadcast task)
    assert "expected 1, your program gave 3" in turn
    assert_no_sealed_example_sent(server, length_task)
    transcripts = sorted((tmp_path / "runs" / summary["run_id"] / "llm").glob("*.json"))
    assert len(transcripts) == 2  # one per round, for a person reading the run
    saved = json.loads(transcripts[1].read_text())
    assert saved[0]["messages"][-1]["content"] == turn and WRONG_CONSTANT.strip() not in saved[0]["replies"][0]


def test_validation_failure_shows_validation_counterexamples_and_never_sealed_ones(tmp_path: Path, length_task: Path):
    replies = iter([Reply.text(fenced(ONLY_SHORT)), Reply.text(fenced(RIGHT))])
    with OpenAIServer(lambda body: next(replies)) as server:
        result, summary = induce(server, length_task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    turn = server.chat_requests()[1]["messages"][-1]["content"]
    assert "rejected at the validate stage" in turn and "validation examples" in turn and "Counterexamples" in turn
    validation = {show_sequence(e.inputs) for e in split_task(load_task(length_task)).validation}
    assert any(f"input {text}:" in turn for text in validation)  # the one set repair may see
    assert summary["validation_revealed"] >= 1
    assert_no_sealed_example_sent(server, length_task)


def test_reply_without_code_becomes_a_feedback_turn(tmp_path: Path, length_task: Path):
    replies = iter([Reply.text("I think the answer is the number of tokens, but I cannot write code."),
                    Reply.text(RIGHT)])  # then code, unfenced
    with OpenAIServer(lambda body: next(replies)) as server:
        result, summary = induce(server, length_task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    second = server.chat_requests()[1]["messages"]
    assert second[-2]["role"] == "assistant" and "cannot write code" in second[-2]["content"]
    assert "contained no Python code block" in second[-1]["content"]
    assert summary["attempts"] == 1


def test_escaping_code_is_stopped_by_the_sandbox(tmp_path: Path, length_task: Path):
    marker = tmp_path / "escaped.txt"
    escape = f"""from tracr.rasp import rasp
import os
os.system("touch {marker}")
open("{marker}", "w").write("out")
program = rasp.Map(lambda t: 1, rasp.tokens)
"""
    sneaky = f"""from tracr.rasp import rasp
program = rasp.tokens
getattr(__builtins__, "__im" + "port__")("os").system("touch {marker}")
"""
    replies = iter([Reply.text(fenced(escape)), Reply.text(fenced(sneaky)), Reply.text(fenced(RIGHT))])
    with OpenAIServer(lambda body: next(replies)) as server:
        result, summary = induce(server, length_task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert not marker.exists()
    events = [json.loads(line) for line in Path(tmp_path / summary["run_log"]).read_text().splitlines()]
    rejected = [e for e in events if e["event"] == "check" and not e["ok"]]
    assert len(rejected) == 2 and all(e["stage"] in ("screen", "exec") for e in rejected)
    assert ("screen" in server.chat_requests()[1]["messages"][-1]["content"]
            or "exec" in server.chat_requests()[1]["messages"][-1]["content"])


def test_rate_limit_is_retried(tmp_path: Path, length_task: Path):
    with OpenAIServer(scripted(Reply.error(429, "Rate limit reached", retry_after_ms=200), Reply.text(fenced(RIGHT)))) as server:
        result, summary = induce(server, length_task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert len(server.requests) == 2 and server.request_times[1] - server.request_times[0] >= 0.2
    assert summary["inducer_usage"]["llm"]["calls"] == 1 and summary["inducer_usage"]["llm"]["failed_calls"] == 0


def test_server_error_fails_clearly_and_auto_falls_back_to_search(tmp_path: Path, length_task: Path):
    with OpenAIServer(scripted(Reply.error(500, "upstream exploded", retry_after_ms=10))) as server:
        result, summary = induce(server, length_task, tmp_path, env={"AUTOCONN_LLM_RETRIES": "1"})
        assert result.returncode == 1 and summary["status"] == "failed"
        assert "HTTP 500" in summary["reason"] and "upstream exploded" in summary["reason"]
        assert len(server.requests) == 2  # one try, one retry
        fallback, fallen = induce(server, length_task, tmp_path, "--name", "length_auto", inducer="auto",
                                  env={"AUTOCONN_LLM_RETRIES": "0"})
    assert fallback.returncode == 0, fallback.stderr + fallback.stdout
    assert fallen["inducer"] == "search" and any("falling back to search" in n for n in fallen["inducer_notes"])


def test_hang_past_the_timeout_fails_clearly(tmp_path: Path, length_task: Path):
    with OpenAIServer(scripted(Reply.hang(20))) as server:
        result, summary = induce(server, length_task, tmp_path, env={"AUTOCONN_LLM_TIMEOUT": "1", "AUTOCONN_LLM_RETRIES": "1"})
    assert result.returncode == 1 and summary["status"] == "failed"
    assert "did not answer within 1 s" in summary["reason"] and summary["seconds"] < 15
    assert len(server.requests) == 2


def test_unreachable_endpoint_and_refused_key_fail_clearly(tmp_path: Path, length_task: Path):
    with OpenAIServer(scripted(Reply.text(fenced(RIGHT))), api_key="sk-right") as server:
        refused, summary = induce(server, length_task, tmp_path)
        assert refused.returncode == 1 and "refused the API key" in summary["reason"]
        base_url = server.base_url
    unreachable, summary = induce(server, length_task, tmp_path, env={"OPENAI_BASE_URL": base_url, "AUTOCONN_LLM_RETRIES": "0"})
    assert unreachable.returncode == 1 and "cannot reach test-model" in summary["reason"]


def test_no_model_configured_is_a_usage_error(tmp_path: Path, length_task: Path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTOCONN_"))}
    result = subprocess.run([sys.executable, "-m", "autoconn.cli", "induce", str(length_task), "--inducer", "llm"],
                            cwd=tmp_path, capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 2 and "AUTOCONN_MODEL" in result.stderr and not (tmp_path / "generated_conns").exists()


def test_smallest_verified_sample_wins_and_the_library_teaches_the_next_task(tmp_path: Path, length_task: Path):
    with OpenAIServer(scripted(Reply.text([fenced(RIGHT_BUT_BIGGER), fenced(RIGHT)]))) as server:
        result, summary = induce(server, length_task, tmp_path, "--samples", "2", "--name", "count_tokens")
    assert result.returncode == 0, result.stderr + result.stdout
    assert server.chat_requests()[0]["n"] == 2
    assert summary["validated_candidates"] == 2 and summary["attempts"] == 2
    program = (tmp_path / summary["program"]).read_text()
    assert "length_again" not in program and '.named("length")' in program
    # The registered CoNN is now a demonstration for a related task.
    related = write_jsonl(tmp_path / "count_b.jsonl",
                          [{"name": "count_b", "description": "number of b tokens, at every position"}] + [
                              {"input": list(w), "output": w.count("b")}
                              for w in ["a", "b", "ab", "bb", "aba", "bbb", "abba", "baab", "bbbab", "aabab", "babbba"]])
    with OpenAIServer(scripted(Reply.text("no idea"))) as server:
        induce(server, related, tmp_path, "--max-attempts", "1", env={"AUTOCONN_LLM_RETRIES": "0"})
    user = server.chat_requests()[0]["messages"][1]["content"]
    assert "# Verified example: count_tokens" in user and "number of tokens, at every position" in user


COUNT_A_CAPPED = """from tracr.rasp import rasp
count = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda key, query: key == "a")).named("count_a")
program = rasp.Map(lambda c: min(c, 7), count).named("capped")
"""
COUNT_A = """from tracr.rasp import rasp
program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda key, query: key == "a")).named("count_a")
"""


def test_no_sealed_example_or_sealed_only_output_value_reaches_the_model(tmp_path: Path):
    """The one output 8 of this file sits in its sealed set: the model never sees the input, nor the
    value in "Output values seen", nor a counterexample about it."""
    from tests.pipeline.test_verification import count_a_with_a_sealed_only_value

    path, special = count_a_with_a_sealed_only_value(tmp_path)
    with OpenAIServer(scripted(Reply.text(fenced(COUNT_A_CAPPED)), Reply.text(fenced(COUNT_A)))) as server:
        result, summary = induce(server, path, tmp_path)
    sent = all_text(server)
    values_lines = [line for line in sent.splitlines() if line.startswith("- Output values seen:")]
    assert values_lines and all("8" not in line for line in values_lines)
    assert "6" in values_lines[0]  # the check can fail: 6 does occur in the induction set
    assert_no_sealed_example_sent(server, path)
    assert show_sequence(special.inputs) not in sent
    # the capped program is right on induction and validation, wrong only on the sealed input: the run
    # fails on the verdict, never asks the model again, and registers nothing
    assert result.returncode == 1 and "failed the sealed test" in summary["reason"]
    assert len(server.chat_requests()) == 1 and not (tmp_path / "lib" / "count_a").exists()


def test_the_api_key_is_sent_and_never_written(tmp_path: Path, length_task: Path):
    """The key reaches the endpoint, and no file of the run (log, transcripts, checkpoint, summary),
    no library file and no output holds it."""
    key = "sk-never-write-me-7d1e93"
    replies = iter([Reply.text(fenced(WRONG_CONSTANT)), Reply.text(fenced(RIGHT))])
    with OpenAIServer(lambda body: next(replies), api_key=key) as server:
        result, summary = induce(server, length_task, tmp_path, env={"OPENAI_API_KEY": key})
    assert result.returncode == 0, result.stderr + result.stdout
    assert server.auth_headers and all(header == f"Bearer {key}" for header in server.auth_headers)
    run_dir = tmp_path / "runs" / summary["run_id"]
    written = [p for p in [*run_dir.rglob("*"), *(tmp_path / "lib").rglob("*")] if p.is_file()]
    assert any(p.parent.name == "llm" for p in written) and any(p.name == "log.jsonl" for p in written)
    for path in written:
        assert key.encode() not in path.read_bytes(), f"the API key is in {path}"
    assert key not in result.stdout and key not in result.stderr
