"""The gate β: from the context alone, decide whether a CoNN writes next, and with what operand.

β = 1 for a CoNN when the context ends with its trigger and the text since the last
operand start (before that trigger) reads as at most ``max_seq_len`` of its tokens. When
the text ends with a trigger after an operand start but the operand cannot be read (a
character outside the vocab, too long, empty), β stays 0 and the refusal is reported, so a
caller can record why the LM kept writing. A trigger with no open operand before it (none
at all, or one already closed by an earlier trigger) is ordinary text: nothing is reported.

When several CoNNs' triggers end the context, the one whose operand start ends last wins
(the innermost operand), ties going to the longer operand start ("unsort(" over "sort(").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autoconn.fusion.metadata import FusionSpec
from autoconn.task import Token


@dataclass(frozen=True)
class GateRule:
    """What the gate needs to know about one CoNN."""

    conn: str
    spec: FusionSpec
    max_seq_len: int


@dataclass(frozen=True)
class Fire:
    """β = 1: this CoNN writes next, on these tokens."""

    conn: str
    operand: str
    tokens: tuple[Token, ...]


@dataclass(frozen=True)
class Refusal:
    """The context ends with a trigger after an operand start, but the operand cannot go to the CoNN."""

    conn: str
    operand: str
    reason: str


Decision = Fire | Refusal | None


def _open_operand(context: str, rule: GateRule) -> tuple[int, str] | None:
    """(end of the operand start, operand text) when the context ends with the rule's trigger
    right after an open operand; None otherwise."""
    spec = rule.spec
    if not context.endswith(spec.trigger):
        return None
    body = context[:len(context) - len(spec.trigger)]
    start = body.rfind(spec.operand_start)
    if start < 0:
        return None
    opened = start + len(spec.operand_start)
    operand = body[opened:]
    if spec.trigger in operand:  # that operand was already closed: this trigger is ordinary text
        return None
    return opened, operand


def decide(context: str, rules: Sequence[GateRule]) -> Decision:
    """β for the next character of `context`: a Fire, a Refusal, or None (the LM writes)."""
    best: tuple[int, int, GateRule, str] | None = None
    for rule in rules:
        found = _open_operand(context, rule)
        if found is None:
            continue
        opened, operand = found
        rank = (opened, len(rule.spec.operand_start))
        if best is None or rank > best[:2]:
            best = (*rank, rule, operand)
    if best is None:
        return None
    _, _, rule, operand = best
    parsed = rule.spec.parse_operand(operand)
    if isinstance(parsed, str):
        return Refusal(rule.conn, operand, f"operand {operand!r}: {parsed}")
    if len(parsed) > rule.max_seq_len:
        return Refusal(rule.conn, operand,
                       f"operand has {len(parsed)} tokens; {rule.conn} is proven on at most {rule.max_seq_len}")
    return Fire(rule.conn, operand, parsed)
