"""What token-level fusion needs from a language model: next-character scores for a context.

The fusion runtime is generic over this protocol, so the in-process demo LM and any other
causal character-level model plug in the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class CharLM(Protocol):
    """A causal character-level language model.

    ``alphabet[i]`` is the character of logit ``i``; ``end_of_text`` (a member of the
    alphabet, usually ``"\\n"``) ends a completion. ``max_context`` is the longest context
    the model attends to (callers keep only the last ``max_context`` characters).
    """

    # Read-only (properties): fusion only reads them, so a model may hold a tuple, a list or a str.
    @property
    def alphabet(self) -> Sequence[str]: ...

    @property
    def end_of_text(self) -> str: ...

    @property
    def max_context(self) -> int: ...

    def next_char_logits(self, contexts: Sequence[str]) -> np.ndarray:
        """Logits of the next character for each context, shape (len(contexts), len(alphabet))."""
        ...
