"""Training and test text for the demo LM, generated from library entries.

Nothing here knows a rule: operands are random tokens of each entry's vocab, answers come
from running the entry's compiled CoNN, and the line layout (``parity(0110)=0``) comes from
the entry's fusion spec (autoconn.fusion.metadata), so the LM is trained on exactly the
text the fused decoder will read and write.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoconn.conn.artifact import Library, LibraryEntry
from autoconn.fusion.metadata import FusionSpec, same_token, spec_of_meta, token_text
from autoconn.task import Token

DEFAULT_LIBRARY = Path(__file__).resolve().parents[3] / "generated_conns"


@dataclass(frozen=True)
class Example:
    rule: str
    operand: tuple[Token, ...]
    prompt: str  # up to and including the trigger
    answer: str  # the completion after the trigger, without the LM's end-of-text character

    def line(self, end_of_text: str) -> str:
        return self.prompt + self.answer + end_of_text


def operand_text(spec: FusionSpec, operand: Sequence[Token]) -> str:
    """The operand as the LM writes it: the inverse of ``spec.parse_operand``."""
    def text_of(token: Token) -> str:
        return next((text for text, t in spec.token_map.items() if same_token(t, token)), None) or token_text(token)

    return ("" if spec.split == "char" else " ").join(text_of(t) for t in operand)


def sample_operands(vocab: Sequence[Token], lengths: Sequence[int], count: int, rng: random.Random) -> list[list[Token]]:
    """``count`` operands, lengths uniform over ``lengths``, tokens uniform over the vocab."""
    return [[rng.choice(vocab) for _ in range(rng.choice(lengths))] for _ in range(count)]


def examples_for(entry: LibraryEntry, operands: Sequence[Sequence[Token]]) -> list[Example]:
    """Prompt and answer text for each operand, the answers computed by the CoNN itself."""
    spec = spec_of_meta(entry.name, entry.meta)
    outputs = entry.runtime().run(operands) if operands else []
    return [Example(entry.name, tuple(op), spec.operand_start + operand_text(spec, op) + spec.trigger,
                    spec.render_output(out)) for op, out in zip(operands, outputs)]


def generate(rules: Sequence[str], lengths: Sequence[int], per_rule: int, seed: int,
             library: Library | None = None) -> list[Example]:
    """``per_rule`` random examples of each rule, interleaved in a seeded random order."""
    library = library or Library(DEFAULT_LIBRARY)
    rng = random.Random(seed)
    examples: list[Example] = []
    for rule in rules:
        entry = library.get(rule)
        vocab = list(entry.meta["vocab"])
        examples += examples_for(entry, sample_operands(vocab, lengths, per_rule, rng))
    rng.shuffle(examples)
    return examples


def alphabet_of(lines: Sequence[str], extra: str) -> tuple[str, ...]:
    """Every character the text uses, sorted, plus ``extra`` (the end-of-text character)."""
    return tuple(sorted(set("".join(lines)) | set(extra)))


def describe(examples: Sequence[Example]) -> dict[str, Any]:
    by_rule: dict[str, int] = {}
    for example in examples:
        by_rule[example.rule] = by_rule.get(example.rule, 0) + 1
    return {"examples": len(examples), "by_rule": by_rule}
