"""Where the graph goes after each node: pure functions of the state, one per branching node.

    induce   -> check (candidates pending) | finish (no inducer has any)
    check    -> validate (right on the induction set) | next attempt
    validate -> next attempt (test once something validated)
    test     -> register (the verdict passed) | finish (failed: never registered)
"""

from __future__ import annotations

from typing import Literal

from autoconn.pipeline.nodes import budget_left
from autoconn.pipeline.state import InductionState

Next = Literal["check", "validate", "test", "induce", "register", "finish"]


def after_induce(state: InductionState) -> Next:
    return "check" if state.get("pending") and state.get("status") != "failed" else "finish"


def next_attempt(state: InductionState) -> Next:
    """After a candidate is done: test once something validated and nothing pending is worth
    comparing with it; stop on budget; else the next pending one, else ask again."""
    pool, pending = state.get("validated_pool") or [], state.get("pending")
    if pool and (not pending or not state.get("compare_batch") or budget_left(state)):
        return "test"
    if budget_left(state):
        return "finish"
    return "check" if pending else "induce"


def after_check(state: InductionState) -> Next:
    current = state.get("current") or {}
    return "validate" if current.get("passed_check") else next_attempt(state)


def after_validate(state: InductionState) -> Next:
    return next_attempt(state)


def after_test(state: InductionState) -> Next:
    return "finish" if state.get("status") == "failed" else "register"
