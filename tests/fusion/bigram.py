"""A tiny, real character LM for fusion tests: a bigram table fit on a few lines of text.

Deterministic (greedy decoding takes the most frequent next character, ties to the earlier
alphabet entry); it backs off to character frequencies after a character it never saw.
The training text makes it answer every "...)=" with "0" (wrong, as a small LM would be),
and after a "3 " go on to write "length(ab)=" so one completion can call two CoNNs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

TRAINING_TEXT = "x)=0\n" * 3 + "123 length(ab)=2\n" + "12\n"


class BigramLM:
    """Implements autoconn.fusion.lm.CharLM."""

    end_of_text = "\n"
    max_context = 64

    def __init__(self, text: str = TRAINING_TEXT) -> None:
        self.alphabet: list[str] = sorted(set(text))
        index = {c: i for i, c in enumerate(self.alphabet)}
        self.counts = np.zeros((len(self.alphabet), len(self.alphabet)))
        for a, b in zip(text, text[1:]):
            self.counts[index[a], index[b]] += 1
        unigram = Counter(text)
        self.prior = np.array([unigram[c] for c in self.alphabet], dtype=float)
        self.index = index
        self.calls: list[int] = []  # batch size of each call, to see lockstep batching

    def next_char_logits(self, contexts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(contexts))
        rows = []
        for context in contexts:
            row = self.counts[self.index[context[-1]]] if context and context[-1] in self.index else self.prior
            rows.append(np.log(row + 1e-3))
        return np.stack(rows)
