"""One LangGraph StateGraph from a task file to a registered CoNN, checkpointed in SQLite.

    observe -> induce -> check -> verify -> register -> finish
                 ^         |        |
                 +---------+--------+   a rejected candidate becomes feedback; the next
                                        pending one is checked, or the inducer is asked again,
                                        until one verifies or the budget is spent.

An inducer whose candidates are unordered (LLM samples: `compare_candidates`) has every
pending candidate of its batch verified too; the smallest verified one is registered.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from autoconn.pipeline.nodes import Resources, after_check, after_induce, after_verify, make_nodes, timed
from autoconn.pipeline.runlog import RunLog
from autoconn.pipeline.state import InductionState, RunConfig, new_state

STEPS_PER_ATTEMPT = 3  # induce, check, verify at most, per candidate


def build_graph(resources: Resources, checkpointer: Any = None) -> Any:
    nodes = make_nodes(resources)
    graph = StateGraph(InductionState)
    for name, node in nodes.items():
        graph.add_node(name, timed(name, node, resources))
    graph.add_edge(START, "observe")
    graph.add_edge("observe", "induce")
    graph.add_conditional_edges("induce", after_induce, {"check": "check", "finish": "finish"})
    graph.add_conditional_edges("check", after_check, {"verify": "verify", "check": "check", "induce": "induce",
                                                       "register": "register", "finish": "finish"})
    graph.add_conditional_edges("verify", after_verify, {"register": "register", "check": "check", "induce": "induce", "finish": "finish"})
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
        winner = state.get("verified") or {}
        heldout = winner.get("heldout") or {}
        task = state.get("task_summary", {})
        revealed = sum(len(f.get("counterexamples", [])) for f in state.get("feedback", []) if f["stage"] == "verify")
        return {
            "status": "verified" if state.get("status") == "verified" else "failed",
            "name": config["name"],
            "program": state.get("registered"),
            "heldout_accuracy": heldout.get("accuracy"),
            "heldout_examples": heldout.get("total", task.get("heldout_examples")),
            "heldout_counterexamples_revealed": revealed,
            "proven_up_to_length": heldout.get("max_length"),
            "induced_up_to_length": task.get("induction_max_length"),
            "compiled_max_seq_len": (state.get("settings") or {}).get("max_seq_len"),
            "attempts": state.get("attempts", 0),
            "seconds": round(state.get("elapsed", self.seconds), 2),
            "inducer": (winner.get("candidate") or {}).get("origin") or state.get("active_inducer"),
            "layers": (winner.get("size") or {}).get("layers"),
            "parameters": (winner.get("size") or {}).get("parameters"),
            "reason": state.get("reason") or None,
            "inducer_notes": state.get("inducer_log", []),
            "run_id": self.run_id,
            "run_log": str(self.log_path),
            "verified_candidates": len(state.get("verified_pool") or []),
            "inducer_usage": state.get("inducer_usage", {}),
            "last_feedback": [{"stage": f["stage"], "message": f["message"]} for f in state.get("feedback", [])[-3:]],
        }


def run_induction(resources: Resources, config: Optional[RunConfig] = None, *, resume_run: Optional[str] = None,
                  runs_dir: str = "runs") -> RunOutcome:
    """Starts a run from `config`, or resumes `resume_run` from its last checkpoint."""
    run_id = resume_run or (config or {}).get("run_id")  # type: ignore[union-attr]
    if not run_id:
        raise ValueError("either a config or a run id to resume is needed")
    base = config["runs_dir"] if config else runs_dir
    run_log = RunLog(base, run_id)
    if resume_run and not run_log.exists():
        raise FileNotFoundError(f"no run {run_id!r} under {base}/ (its checkpoint.sqlite is missing)")
    run_log.create()
    started = time.monotonic()
    connection = sqlite3.connect(str(run_log.checkpoint_path), check_same_thread=False)
    try:
        graph = build_graph(resources, SqliteSaver(connection))
        thread = {"configurable": {"thread_id": run_id}}
        if resume_run:
            saved = graph.get_state(thread)
            if not saved.values:
                raise FileNotFoundError(f"run {run_id!r} has no checkpoint to resume from")
            config = saved.values["config"]
            if not saved.next:  # already finished: report it again
                return RunOutcome(run_id, saved.values, 0.0, run_log.log_path)
            run_log.event("resume", next=list(saved.next))
            payload = None
        else:
            run_log.event("start", config=config)
            payload = new_state(config)  # type: ignore[arg-type]
        limits = thread | {"recursion_limit": recursion_limit(config["max_attempts"])}  # type: ignore[index]
        final = graph.invoke(payload, limits)
    finally:
        connection.close()
        resources.close()
    outcome = RunOutcome(run_id, final, time.monotonic() - started, run_log.log_path)
    run_log.write_summary(outcome.summary())
    return outcome
