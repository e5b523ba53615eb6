"""Where CoNNs wrote in a completion, and where they were asked but the LM kept writing.

Shared by token-level and text-level fusion; offsets are into the completion (not the prompt).
"""

from __future__ import annotations

from typing import NamedTuple


class Span(NamedTuple):
    """Characters completion[start:end] were written by CoNN `conn`."""

    start: int
    end: int
    conn: str


class Fallback(NamedTuple):
    """At completion offset `position` the context ended with `conn`'s trigger, but the operand
    could not go to the CoNN (`reason`), so the LM kept writing."""

    position: int
    conn: str
    reason: str
