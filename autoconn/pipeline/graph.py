"""One LangGraph StateGraph from a task file to a registered CoNN, checkpointed in SQLite.

    observe -> induce -> check -> validate -> test -> register -> finish
                 ^         |          |          |
                 +---------+----------+          +--> finish (failed: never registered)
                 a rejected candidate becomes feedback (validation counterexamples included);
                 the next pending one is checked, or the inducer is asked again, until one
                 validates or the budget is spent. Then the smallest validated candidate
                 meets the sealed set (and the oracle's sealed draw) once: the verdict.

An inducer whose candidates are unordered (LLM samples: `Proposal.compare_candidates`) has
every pending candidate of its batch validated too; the smallest validated one is tested.

The nodes are module-level functions (nodes.py), the routing pure functions of the state
(routes.py); the live objects reach the nodes as LangGraph's run context (context.py).
Starting and resuming runs from a user's request is autoconn.api's job.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from autoconn.pipeline.context import RunContext
from autoconn.pipeline.nodes import NODES, revealed, timed
from autoconn.pipeline.routes import (
    after_check,
    after_induce,
    after_test,
    after_validate,
)
from autoconn.pipeline.runlog import RunLog
from autoconn.pipeline.state import (
    CheckedCandidate,
    InductionState,
    RunConfig,
    new_state,
)
from autoconn.verdict import record_counts

STEPS_PER_ATTEMPT = 3  # induce, check, validate at most, per candidate


class RunNotFound(FileNotFoundError):
    """No checkpoint to resume from: the message names the run and the folder searched."""


def build_graph(checkpointer: Any = None) -> Any:
    graph = StateGraph(InductionState, context_schema=RunContext)
    for name, node in NODES.items():
        graph.add_node(name, timed(name, node))
    graph.add_edge(START, "observe")
    graph.add_edge("observe", "induce")
    graph.add_conditional_edges("induce", after_induce, {"check": "check", "finish": "finish"})
    routes: dict[Hashable, str] = {"validate": "validate", "test": "test", "check": "check", "induce": "induce",
                                   "finish": "finish"}
    graph.add_conditional_edges("check", after_check, routes)
    graph.add_conditional_edges("validate", after_validate, routes)
    graph.add_conditional_edges("test", after_test, {"register": "register", "finish": "finish"})
    graph.add_edge("register", "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer)


def recursion_limit(max_attempts: int) -> int:
    """Enough supersteps for every attempt's induce/check/verify, so a long repair loop never
    dies of GraphRecursionError before its own budget stops it."""
    return STEPS_PER_ATTEMPT * max_attempts + 2 * max_attempts + 10


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    state: InductionState
    seconds: float
    log_path: Path

    def summary(self) -> dict[str, Any]:
        """The `--json` object of `autoconn induce` (DESIGN.md contract plus figures)."""
        state, config = self.state, self.state["config"]
        winner: CheckedCandidate = state.get("verified") or CheckedCandidate()
        tested: CheckedCandidate = state.get("tested") or CheckedCandidate()
        record = winner.get("verified") or tested.get("verified") or {}
        task = state.get("task_summary", {})
        verdict_correct, verdict_total = record_counts(record) if record else (0, 0)  # as `autoconn list` counts them
        verified = state.get("status") == "verified"
        return {
            "status": "verified" if verified else "failed",
            "name": config["name"],
            "program": state.get("registered"),
            "heldout_accuracy": (verdict_correct / verdict_total if verdict_total else None) if record else None,
            "heldout_examples": verdict_total if record else task.get("sealed_examples"),
            "verified": record or None,
            "verified_length": record.get("max_length") if verified else None,
            "verified_how": record.get("how") if verified else None,
            "held_out": record.get("held_out") if record else None,
            "statement": record.get("statement") if record else None,
            "validation_revealed": revealed(state),
            "induced_up_to_length": task.get("induction_max_length"),
            "compiled_max_seq_len": (state.get("settings") or {}).get("max_seq_len"),
            "split": {key: task.get(f"{key}_examples") for key in ("induction", "validation", "sealed")},
            "attempts": state.get("attempts", 0),
            "seconds": round(state.get("elapsed", self.seconds), 2),
            "inducer": winner["candidate"]["origin"] if "candidate" in winner else state.get("active_inducer"),
            "layers": (winner.get("size") or {}).get("layers"),
            "parameters": (winner.get("size") or {}).get("parameters"),
            "reason": state.get("reason") or None,
            "inducer_notes": state.get("inducer_log", []),
            "run_id": self.run_id,
            "run_log": str(self.log_path),
            "validated_candidates": len(state.get("validated_pool") or []),
            "inducer_usage": state.get("inducer_usage", {}),
            "last_feedback": [{"stage": f["stage"], "message": f["message"]} for f in state.get("feedback", [])[-3:]],
        }


@contextmanager
def checkpointed(run_log: RunLog) -> Iterator[Any]:
    """The compiled graph over the run's SQLite checkpoint (closed on the way out)."""
    connection = sqlite3.connect(str(run_log.checkpoint_path), check_same_thread=False)
    try:
        yield build_graph(SqliteSaver(connection))
    finally:
        connection.close()


def thread(run_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": run_id}}


def saved_state(runs_dir: str, run_id: str) -> tuple[InductionState, list[str]]:
    """The checkpointed state of a run and the nodes it would run next ([] when it finished):
    the one source of truth for a resume (its config included)."""
    run_log = RunLog(runs_dir, run_id)
    if not run_log.exists():
        raise RunNotFound(f"no run {run_id!r} under {runs_dir}/ (its checkpoint.sqlite is missing)")
    with checkpointed(run_log) as graph:
        saved = graph.get_state(thread(run_id))
    if not saved.values:
        raise RunNotFound(f"run {run_id!r} has no checkpoint to resume from")
    return saved.values, list(saved.next)


def run_graph(context: RunContext, config: RunConfig, *, resume: bool = False) -> RunOutcome:
    """Runs `config`'s graph to its end: from the start, or (`resume`) from the run's last
    checkpoint with `config` replacing the saved one (a resume may only add `force`)."""
    run_log = RunLog(config["runs_dir"], config["run_id"])
    run_log.create()
    started = time.monotonic()
    try:
        with checkpointed(run_log) as graph:
            if resume:
                saved = graph.get_state(thread(config["run_id"]))
                run_log.event("resume", next=list(saved.next))
                graph.update_state(thread(config["run_id"]), {"config": config})
                payload: InductionState | None = None
            else:
                run_log.event("start", config=config)
                payload = new_state(config)
            limits = thread(config["run_id"]) | {"recursion_limit": recursion_limit(config["max_attempts"])}
            # "sync": each step's checkpoint is on disk before the next step starts, so a run killed at any
            # moment resumes from the step it was in (LangGraph's default writes them in the background)
            final = graph.invoke(payload, limits, context=context, durability="sync")
    finally:
        context.close()
    outcome = RunOutcome(config["run_id"], final, time.monotonic() - started, run_log.log_path)
    run_log.write_summary(outcome.summary())
    return outcome
