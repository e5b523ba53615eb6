"""Token-level Neural Comprehension: decode with a character LM, let CoNNs write where the gate opens.

API::

    from autoconn.fusion.token_level import fuse_decode, FusionResult
    from autoconn.fusion.conn_tool import load_fused_conns

    conns = load_fused_conns(["sort", "parity"])            # library CoNNs + their fusion specs
    results = fuse_decode(lm, conns, prompts, max_new_chars=40)            # list[FusionResult]
    baseline = fuse_decode(lm, conns, prompts, max_new_chars=40, use_conns=False)  # LM alone

    fuse_decode(lm: CharLM, conns: Sequence[FusedConn], prompts: Sequence[str], *,
                max_new_chars: int, use_conns: bool = True, temperature: float = 0.0,
                seed: int = 0) -> list[FusionResult]
    fuse_decode_one(lm, conns, prompt, *, max_new_chars, ...) -> FusionResult

    FusionResult: prompt, text (= prompt + completion), completion,
                  spans: tuple[Span(start, end, conn), ...]   offsets into `completion`
                  fallbacks: tuple[Fallback(position, conn, reason), ...]  position in `completion`
                  stop: "end_of_text" | "max_new_chars"

Decoding: all prompts advance in lockstep; each step asks the LM once for the whole batch of
still-running rows (``next_char_logits`` on their last ``max_context`` characters) and takes
the argmax (or samples when temperature > 0). Before each LM step the gate (autoconn.fusion.gate)
reads the row's context: when a CoNN fires, its answer text is written in place of the LM's
choice for every character it spans — the one-hot distribution of the paper's β = 1, so the
LM is not consulted for them — then the LM continues. Fires in the same step are batched per
CoNN (one compiled-model run). The gate is read at the end of the prompt and after every
LM-written character, not right after a CoNN answer (an answer never re-triggers itself).
When the context ends with a trigger but the operand cannot go to the CoNN (a token outside
its vocab, longer than its max_seq_len, empty), the LM keeps writing and a Fallback records
why. CoNN characters count toward ``max_new_chars``; an answer that would pass the cap is
cut there. ``end_of_text`` ends a row and is not part of the completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from autoconn.fusion.conn_tool import FusedConn, check_fused
from autoconn.fusion.gate import Fire, GateRule, Refusal, decide
from autoconn.fusion.lm import CharLM
from autoconn.fusion.marks import Fallback, Span

__all__ = ["FusionResult", "Span", "Fallback", "fuse_decode", "fuse_decode_one"]


@dataclass(frozen=True)
class FusionResult:
    prompt: str
    completion: str
    spans: tuple[Span, ...]
    fallbacks: tuple[Fallback, ...]
    stop: Literal["end_of_text", "max_new_chars"]

    @property
    def text(self) -> str:
        return self.prompt + self.completion

    def conn_text(self) -> list[tuple[str, str]]:
        """(conn, text it wrote), in order."""
        return [(s.conn, self.completion[s.start:s.end]) for s in self.spans]

    def to_json(self) -> dict[str, object]:
        return {"prompt": self.prompt, "completion": self.completion, "text": self.text, "stop": self.stop,
                "spans": [s._asdict() | {"text": self.completion[s.start:s.end]} for s in self.spans],
                "fallbacks": [f._asdict() for f in self.fallbacks]}


@dataclass
class _Row:
    prompt: str
    completion: str = ""
    spans: list[Span] = field(default_factory=list)
    fallbacks: list[Fallback] = field(default_factory=list)
    stop: Literal["", "end_of_text"] = ""  # "": still running
    gate_due: bool = True  # the last character came from the prompt or the LM

    @property
    def context(self) -> str:
        return self.prompt + self.completion

    def result(self) -> FusionResult:
        return FusionResult(self.prompt, self.completion, tuple(self.spans), tuple(self.fallbacks),
                            self.stop or "max_new_chars")


def fuse_decode(lm: CharLM, conns: Sequence[FusedConn], prompts: Sequence[str], *, max_new_chars: int,
                use_conns: bool = True, temperature: float = 0.0, seed: int = 0) -> list[FusionResult]:
    """Decodes every prompt with `lm`, the CoNNs writing where their gates open (see the module doc)."""
    if max_new_chars < 0:
        raise ValueError("max_new_chars must be at least 0")
    check_fused(conns)
    by_name = {c.name: c for c in conns}
    rules = [c.rule for c in conns] if use_conns else []
    alphabet = list(lm.alphabet)
    end_index = alphabet.index(lm.end_of_text) if lm.end_of_text in alphabet else -1
    rng = np.random.default_rng(seed)
    rows = [_Row(prompt) for prompt in prompts]
    while True:
        running = [row for row in rows if not row.stop and len(row.completion) < max_new_chars]
        if not running:
            break
        if rules:
            _let_conns_write(running, rules, by_name, max_new_chars)
            running = [row for row in running if len(row.completion) < max_new_chars]
            if not running:
                break
        contexts = [row.context[-lm.max_context:] if lm.max_context > 0 else row.context for row in running]
        logits = np.asarray(lm.next_char_logits(contexts), dtype=np.float64)
        for row, choice in zip(running, _choose(logits, temperature, rng)):
            if choice == end_index:
                row.stop = "end_of_text"
            else:
                row.completion += alphabet[choice]
                row.gate_due = True
    return [row.result() for row in rows]


def fuse_decode_one(lm: CharLM, conns: Sequence[FusedConn], prompt: str, *, max_new_chars: int,
                    use_conns: bool = True, temperature: float = 0.0, seed: int = 0) -> FusionResult:
    return fuse_decode(lm, conns, [prompt], max_new_chars=max_new_chars, use_conns=use_conns,
                       temperature=temperature, seed=seed)[0]


def _let_conns_write(rows: Sequence[_Row], rules: Sequence[GateRule], by_name: dict[str, FusedConn], max_new_chars: int) -> None:
    """Reads the gate of every row due for it; runs each fired CoNN once on all its operands."""
    fired: dict[str, list[tuple[_Row, Fire]]] = {}
    for row in rows:
        if not row.gate_due:
            continue
        row.gate_due = False
        decision = decide(row.context, rules)
        if isinstance(decision, Fire):
            fired.setdefault(decision.conn, []).append((row, decision))
        elif isinstance(decision, Refusal):
            row.fallbacks.append(Fallback(len(row.completion), decision.conn, decision.reason))
    for name, items in fired.items():
        conn = by_name[name]
        try:
            answers = conn.answer_many([fire.tokens for _, fire in items])
        except ValueError as error:  # ConnInputError: the gate's checks and the runtime's disagree
            for row, _ in items:
                row.fallbacks.append(Fallback(len(row.completion), name, f"the CoNN refused the operand: {error}"))
            continue
        for (row, _), answer in zip(items, answers):
            answer = answer[:max_new_chars - len(row.completion)]
            if answer:
                start = len(row.completion)
                row.completion += answer
                row.spans.append(Span(start, len(row.completion), name))


def _choose(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> list[int]:
    if temperature <= 0:
        return [int(i) for i in np.argmax(logits, axis=-1)]
    scaled = logits / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    probs = np.exp(scaled)
    probs /= probs.sum(axis=-1, keepdims=True)
    return [int(rng.choice(len(p), p=p)) for p in probs]
