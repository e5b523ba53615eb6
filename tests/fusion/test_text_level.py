"""Text-level fusion against a real local HTTP server speaking the OpenAI chat-completions API,
through the real `openai` client (autoconn.endpoint.ChatEndpoint)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from autoconn.endpoint import ChatEndpoint, EndpointConfig, EndpointError
from autoconn.fusion.conn_tool import FusedConn
from autoconn.fusion.marks import Fallback, Span
from autoconn.fusion.text_level import CONTINUE_INSTRUCTION, fuse_chat
from tests.support.openai_server import OpenAIServer, Reply


class StoppingModel:
    """A responder that writes the next scripted text and, like a real server, cuts it at the first
    stop sequence the request names (the stop text itself is not returned)."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            text = self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]
        cuts = [text.index(s) for s in body.get("stop") or [] if s in text]
        return Reply.text(text[:min(cuts)] if cuts else text, finish_reason="stop")


@pytest.fixture
def conns(library_conns: dict[str, FusedConn]) -> list[FusedConn]:
    return [library_conns["sort"], library_conns["length"]]


def endpoint(server: OpenAIServer) -> ChatEndpoint:
    return ChatEndpoint(EndpointConfig(model="test-model", base_url=server.base_url, max_retries=0, timeout_seconds=10))


def test_triggers_stop_the_model_and_the_conn_answer_is_sent_back(conns: list[FusedConn]):
    model = StoppingModel("Sorted: sort(312)=000 and length(ab)=9 done.",   # the model's own (wrong) answers
                          " and length(ab)=9 done.", " done.")
    with OpenAIServer(model) as server:
        result = fuse_chat(endpoint(server), conns, "Sort 3 1 2, then count a b.", system="Use tools.")
        sent = server.chat_requests()
    assert result.completion == "Sorted: sort(312)=123 and length(ab)=2 done."
    assert result.spans == (Span(18, 21, "sort"), Span(37, 38, "length")) and result.fallbacks == ()
    assert result.rounds == 3 and result.finish_reason == "stop"
    assert [r["stop"] for r in sent] == [[")="]] * 3  # one shared trigger, sent as the stop sequence
    assert sent[0]["messages"] == [{"role": "system", "content": "Use tools."},
                                   {"role": "user", "content": "Sort 3 1 2, then count a b."}]
    assert sent[1]["messages"][2:] == [{"role": "assistant", "content": "Sorted: sort(312)=123"},
                                       {"role": "user", "content": CONTINUE_INSTRUCTION}]
    assert sent[2]["messages"][2] == {"role": "assistant", "content": "Sorted: sort(312)=123 and length(ab)=2"}


def test_an_unreadable_operand_is_left_to_the_model_and_recorded(conns: list[FusedConn]):
    with OpenAIServer(StoppingModel("sort(3x2)=0", "0")) as server:
        result = fuse_chat(endpoint(server), conns, "go")
        sent = server.chat_requests()
    assert result.completion == "sort(3x2)=0" and result.spans == ()
    assert result.fallbacks == (Fallback(8, "sort", "operand '3x2': 'x' is not in the CoNN's vocab"),)
    assert sent[1]["messages"][-2] == {"role": "assistant", "content": "sort(3x2)="}


def test_a_prompt_ending_in_a_trigger_is_answered_before_the_first_request(conns: list[FusedConn]):
    with OpenAIServer(StoppingModel(" is sorted.")) as server:
        result = fuse_chat(endpoint(server), conns, "sort(4132)=")
        sent = server.chat_requests()
    assert result.completion == "1234 is sorted." and result.spans == (Span(0, 4, "sort"),) and result.rounds == 1
    assert sent[0]["messages"][-2:] == [{"role": "assistant", "content": "1234"},
                                        {"role": "user", "content": CONTINUE_INSTRUCTION}]


def test_rounds_are_bounded(conns: list[FusedConn]):
    with OpenAIServer(StoppingModel(" sort(1)=")) as server:  # a model that calls the CoNN forever
        result = fuse_chat(endpoint(server), conns, "go", max_rounds=3)
        assert len(server.chat_requests()) == 3
    assert result.finish_reason == "max_rounds" and len(result.spans) == 3


def test_length_finish_is_reported_without_calling_a_conn(conns: list[FusedConn]):
    with OpenAIServer(lambda body: Reply.text("sort(12", finish_reason="length")) as server:
        result = fuse_chat(endpoint(server), conns, "go")
    assert result.completion == "sort(12" and result.spans == () and result.finish_reason == "length"


def test_a_failing_endpoint_raises_endpoint_error(conns: list[FusedConn]):
    with OpenAIServer(lambda body: Reply.error(500, "boom")) as server:
        with pytest.raises(EndpointError, match="HTTP 500"):
            fuse_chat(endpoint(server), conns, "go")


def test_a_server_that_ignores_stop_sequences_is_cut_at_the_trigger(conns: list[FusedConn]):
    deaf = StoppingModel("sort(312)=000 and length(ab)=9.", " and length(ab)=9.", ".")

    def respond(body: dict[str, Any]) -> Reply:
        return deaf(body | {"stop": None})  # answers as if no stop sequence had been sent

    with OpenAIServer(respond) as server:
        result = fuse_chat(endpoint(server), conns, "go")
    assert result.completion == "sort(312)=123 and length(ab)=2."
    assert result.spans == (Span(10, 13, "sort"), Span(29, 30, "length"))
