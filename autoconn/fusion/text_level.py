"""Text-level fusion for a chat model behind an OpenAI-compatible API (no logits needed).

    fuse_chat(model: ChatModel, conns: Sequence[FusedConn], prompt: str, *, system: str | None = None,
              max_rounds: int = 8, max_tokens: int | None = None, temperature: float = 0.0)
        -> ChatFusionResult(prompt, completion, spans, fallbacks, rounds, finish_reason)

The model generates with the CoNNs' triggers as stop sequences (the API strips a matched
stop sequence from the text and does not say which one matched). When a round ends with
finish_reason "stop", each trigger is put back in turn and the gate (autoconn.fusion.gate) is
read on ``prompt + completion + trigger``; the trigger whose operand start is nearest wins.
If it fires, the trigger and the CoNN's answer are appended to the completion; if the operand
cannot go to the CoNN, the trigger alone is appended and a Fallback records why; if no
trigger has an open operand, the model simply finished. A server that ignores stop sequences
is handled too: the reply is cut at the first trigger that closes an open operand.

Continuation: chat APIs cannot resume a half-written assistant turn portably, so each later
round sends the conversation so far — the user's prompt, the completion so far as an
assistant message (ending with the CoNN's answer), then a user message CONTINUE_INSTRUCTION
asking to continue exactly where it stops — and appends the reply verbatim. Up to
``max_rounds`` requests are made; spans and fallbacks are offsets into ``completion``.

The prompt itself may end with a trigger (e.g. "sort(312)="): the CoNN then answers before
the first request, and the model continues from its answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from autoconn.fusion.conn_tool import FusedConn, check_fused
from autoconn.fusion.gate import Decision, Fire, GateRule, Refusal, decide
from autoconn.fusion.marks import Fallback, Span

MAX_STOP_SEQUENCES = 4  # OpenAI's chat-completions limit
CONTINUE_INSTRUCTION = ("Continue your previous reply exactly where it stops, without repeating any of it "
                        "and without adding commentary.")


class ChatModel(Protocol):
    """What fuse_chat needs of autoconn.endpoint.ChatEndpoint."""

    def chat(self, messages: Sequence[dict[str, str]], *, n: int = 1, temperature: float = 0.0,
             max_tokens: int | None = None, stop: Sequence[str] | None = None) -> Any: ...


@dataclass(frozen=True)
class ChatFusionResult:
    prompt: str
    completion: str
    spans: tuple[Span, ...]
    fallbacks: tuple[Fallback, ...]
    rounds: int  # requests made
    finish_reason: str  # the model's last finish_reason ("stop", "length"...) or "max_rounds"

    @property
    def text(self) -> str:
        return self.prompt + self.completion

    def to_json(self) -> dict[str, object]:
        return {"prompt": self.prompt, "completion": self.completion, "rounds": self.rounds,
                "finish_reason": self.finish_reason,
                "spans": [s._asdict() | {"text": self.completion[s.start:s.end]} for s in self.spans],
                "fallbacks": [f._asdict() for f in self.fallbacks]}


def stop_sequences(conns: Sequence[FusedConn]) -> list[str]:
    """The distinct triggers, in order; the API accepts at most MAX_STOP_SEQUENCES."""
    triggers = list(dict.fromkeys(c.spec.trigger for c in conns))
    if len(triggers) > MAX_STOP_SEQUENCES:
        raise ValueError(f"{len(triggers)} different triggers ({triggers}) but chat APIs accept at most "
                         f"{MAX_STOP_SEQUENCES} stop sequences; fuse fewer CoNNs or give them shared triggers")
    return triggers


def stopped_at(context: str, rules: Sequence[GateRule]) -> tuple[str, Decision]:
    """Which trigger the model most likely stopped at (its text stripped by the API), and the gate's
    decision there; ("", None) when none has an open operand."""
    best: tuple[str, Decision] = ("", None)
    for trigger in dict.fromkeys(rule.spec.trigger for rule in rules):
        decision = decide(context + trigger, [r for r in rules if r.spec.trigger == trigger])
        if decision is not None and (best[1] is None or len(decision.operand) < len(best[1].operand)):
            best = (trigger, decision)
    return best


def trigger_inside(context: str, piece: str, rules: Sequence[GateRule]) -> tuple[int, str, Decision]:
    """The first place in `piece` (new model text after `context`) where a trigger closes an open
    operand: (offset of the trigger, trigger, decision), or (-1, "", None). For servers that do
    not honour stop sequences."""
    triggers = list(dict.fromkeys(rule.spec.trigger for rule in rules))
    for end in range(1, len(piece) + 1):
        for trigger in triggers:
            if piece.endswith(trigger, 0, end):
                decision = decide(context + piece[:end], [r for r in rules if r.spec.trigger == trigger])
                if decision is not None:
                    return end - len(trigger), trigger, decision
    return -1, "", None


def fuse_chat(model: ChatModel, conns: Sequence[FusedConn], prompt: str, *, system: str | None = None,
              max_rounds: int = 8, max_tokens: int | None = None, temperature: float = 0.0) -> ChatFusionResult:
    """Generates a reply to `prompt`, the CoNNs answering wherever the model closes an operand."""
    if max_rounds < 1:
        raise ValueError("max_rounds must be at least 1")
    check_fused(conns)
    by_name = {c.name: c for c in conns}
    rules = [c.rule for c in conns]
    stops = stop_sequences(conns)
    opening = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    completion, spans, fallbacks = "", [], []

    def apply(trigger: str, decision: Decision) -> None:
        nonlocal completion
        if isinstance(decision, Fire):
            completion += trigger
            start = len(completion)
            completion += by_name[decision.conn].answer(decision.tokens)
            spans.append(Span(start, len(completion), decision.conn))
        elif isinstance(decision, Refusal):
            fallbacks.append(Fallback(len(completion), decision.conn, decision.reason))
            completion += trigger

    first = decide(prompt, rules)
    if isinstance(first, Fire):
        apply("", first)
    elif isinstance(first, Refusal):
        fallbacks.append(Fallback(0, first.conn, first.reason))
    rounds, finish = 0, "max_rounds"
    while rounds < max_rounds:
        messages = opening if not completion else [*opening, {"role": "assistant", "content": completion},
                                                   {"role": "user", "content": CONTINUE_INSTRUCTION}]
        reply = model.chat(messages, temperature=temperature, max_tokens=max_tokens, stop=stops or None)
        rounds += 1
        piece = reply.texts[0]
        reason = reply.finish_reasons[0] if reply.finish_reasons else "stop"
        cut, trigger, decision = trigger_inside(prompt + completion, piece, rules)
        if decision is not None:  # the server wrote past a trigger: keep the text up to it
            completion += piece[:cut]
            apply(trigger, decision)
            continue
        completion += piece
        trigger, decision = stopped_at(prompt + completion, rules) if reason == "stop" else ("", None)
        if decision is None:
            finish = reason
            break
        apply(trigger, decision)
    return ChatFusionResult(prompt, completion, tuple(spans), tuple(fallbacks), rounds, finish)
