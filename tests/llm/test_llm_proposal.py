"""The LLM inducer's contract with the pipeline: one `propose` call returns a Proposal (candidates,
lint rejections, transcript, this call's usage, why it stopped, an endpoint failure) and the
inducer keeps nothing between calls. Real HTTP through `openai` to the local server
(tests/support/openai_server.py); no sandbox and no library, so each test takes a moment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from autoconn.endpoint import ChatEndpoint, EndpointConfig
from autoconn.inducers.base import Feedback, Proposal
from autoconn.inducers.llm import LLMInducer, LLMSettings
from autoconn.settings import Secret
from autoconn.task import Task, load_task
from tests.conftest import write_jsonl
from tests.support.openai_server import OpenAIServer, Reply, scripted

RIGHT = """from tracr.rasp import rasp
program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
"""
USES_LENGTH = """from tracr.rasp import rasp
program = rasp.Map(lambda n: n, rasp.length).named("length")
"""
WORDS = ["a", "b", "ab", "ba", "aa", "abb", "bab", "aaa", "abab", "bbba", "aabba", "babab"]


def fenced(source: str) -> str:
    return f"Here it is.\n\n```python\n{source}```\n"


@pytest.fixture
def task(tmp_path: Path) -> Task:
    rows = [{"name": "length", "description": "number of tokens"}] + [{"input": list(w), "output": len(w)} for w in WORDS]
    return load_task(write_jsonl(tmp_path / "length.jsonl", rows))


def make_inducer(server: OpenAIServer, tmp_path: Path, **settings: Any) -> LLMInducer:
    config = EndpointConfig(model="test-model", base_url=server.base_url, api_key=Secret("sk-test"), max_retries=0,
                            timeout_seconds=30)
    return LLMInducer(ChatEndpoint(config), LLMSettings(library_dir=str(tmp_path / "no-library"), fewshot=0,
                                                        **({"samples": 1} | settings)))


def propose(inducer: LLMInducer, task: Task, feedback: Sequence[Feedback] = ()) -> Proposal:
    return inducer.propose(task, task.examples, list(feedback), budget_seconds=60, limit=5)


def test_a_call_returns_its_candidates_transcript_and_usage(tmp_path: Path, task: Task):
    with OpenAIServer(scripted(Reply.text(fenced(RIGHT)))) as server:
        proposal = propose(make_inducer(server, tmp_path), task)
    assert [c.source for c in proposal.candidates] == [RIGHT] and proposal.candidates[0].origin == "llm"
    assert proposal.compare_candidates and not proposal.error and not proposal.rejected and not proposal.stop_message
    assert len(proposal.transcript) == 1 and proposal.transcript[0]["replies"] == [fenced(RIGHT)]
    assert proposal.transcript[0]["request"] == {"n": 1, "temperature": 0.2, "max_tokens": 4096}
    usage = proposal.usage
    assert usage["calls"] == 1 and usage["failed_calls"] == 0 and usage["tokens"] > 0 and usage["lint_rejected"] == 0
    assert usage["model"] == "test-model" and usage["settings"]["samples"] == 1


def test_usage_is_what_this_call_used_not_a_running_total(tmp_path: Path, task: Task):
    with OpenAIServer(scripted(Reply.text(fenced(RIGHT)))) as server:
        inducer = make_inducer(server, tmp_path)
        first = propose(inducer, task)
        second = propose(inducer, task)
    assert first.usage["calls"] == second.usage["calls"] == 1  # a cumulative counter would say 2
    assert inducer.endpoint.usage.calls == 2  # the endpoint may count on; the Proposal gives the difference


def test_a_lint_rejection_comes_back_as_feedback_and_the_next_request_lists_it(tmp_path: Path, task: Task):
    with OpenAIServer(scripted(Reply.text(fenced(USES_LENGTH)), Reply.text(fenced(RIGHT)))) as server:
        proposal = propose(make_inducer(server, tmp_path), task)
        second_request = server.chat_requests()[1]["messages"]
    assert [c.source for c in proposal.candidates] == [RIGHT]  # the flawed one never reaches the sandbox
    assert len(proposal.rejected) == 1 and proposal.rejected[0].stage == "lint" and proposal.rejected[0].source == USES_LENGTH
    assert "rule 12" in proposal.rejected[0].message
    assert proposal.usage["lint_rejected"] == 1 and proposal.usage["calls"] == 2 and len(proposal.transcript) == 2
    assert proposal.transcript[0]["lint"] == [proposal.rejected[0].message]
    assert (second_request[-2]["content"] == f"```python\n{USES_LENGTH.strip()}\n```"
            and "lint stage" in second_request[-1]["content"])


def test_nothing_is_kept_between_calls(tmp_path: Path, task: Task):
    """A used inducer and a fresh one, handed the same feedback, send the same request: what a
    call learned comes back only through the feedback (so a resumed run loses nothing)."""
    with OpenAIServer(scripted(Reply.text(fenced(USES_LENGTH)), Reply.text(fenced(RIGHT)), Reply.text("no code"))) as server:
        used = make_inducer(server, tmp_path)
        first = propose(used, task)
        feedback = [*first.rejected, Feedback(source=RIGHT, stage="check", message="wrong on 2 of 9 examples")]
        before = len(server.chat_requests())
        propose(used, task, feedback)
        between = len(server.chat_requests())
        propose(make_inducer(server, tmp_path), task, feedback)
        requests = server.chat_requests()
    used_again, fresh = requests[before:between], requests[between:]
    assert [r["messages"] for r in used_again] == [r["messages"] for r in fresh]
    history = used_again[0]["messages"][-1]["content"].split("Every attempt so far", 1)[1]
    assert "1. lint:" in history and "2. check:" in history  # the lint rejection, listed from the feedback alone
    state = {f.name for f in fields(LLMInducer)}
    assert state == {"endpoint", "settings", "name", "_cache"}  # no last_transcript, no lint memory


def test_an_endpoint_failure_is_a_proposal_error_with_the_failed_request_kept(tmp_path: Path, task: Task):
    with OpenAIServer(scripted(Reply.error(500, "upstream exploded"))) as server:
        proposal = propose(make_inducer(server, tmp_path), task)
    assert not proposal.candidates and "HTTP 500" in proposal.error and "upstream exploded" in proposal.error
    assert len(proposal.transcript) == 1 and proposal.transcript[0]["error"] == proposal.error
    assert proposal.transcript[0]["messages"][0]["role"] == "system"  # what was asked, for a person reading the run
    assert proposal.usage["calls"] == 0 and proposal.usage["failed_calls"] == 1


def test_replies_without_code_end_with_a_stop_message(tmp_path: Path, task: Task):
    with OpenAIServer(scripted(Reply.text("I cannot say."))) as server:
        proposal = propose(make_inducer(server, tmp_path), task)
    assert not proposal.candidates and not proposal.error
    assert proposal.stop_message == "the model's replies held no code after 3 request(s)"
    assert len(proposal.transcript) == 3 and proposal.usage["calls"] == 3


def test_a_repeated_program_is_not_proposed_again(tmp_path: Path, task: Task):
    with OpenAIServer(scripted(Reply.text(fenced(RIGHT)))) as server:
        proposal = propose(make_inducer(server, tmp_path), task, [Feedback(source=RIGHT, stage="check", message="wrong")])
    assert not proposal.candidates and proposal.stop_message == "every sample repeated an earlier attempt (1)"
