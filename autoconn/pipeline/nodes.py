"""The graph's nodes, one function each:

    observe -> induce -> check -> validate -> test -> register -> finish

Each node reads the state and the run's context (``runtime.context``: inducers, sandbox, task)
and returns only the fields it changed. Three sets, one rule each: an inducer sees the
induction set (through ``Task.induction_view``); validation counterexamples (and the oracle's
validation draw) come back to it as feedback; the sealed set (and the oracle's sealed draw) is
scored once, for the winner, and is never revealed. Every score comes from running the returned
weights here, on the host: nothing the sandboxed process says about its own outputs is believed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from typing import Any, Protocol

from langgraph.runtime import Runtime

from autoconn.checking import display_graph, make_job, output_kind_problem, register_checked
from autoconn.conn.compile import CompileSettings, default_settings
from autoconn.conn.verify import Failure, Verification, by_length, score_runtime
from autoconn.inducers.base import Counterexample, Feedback, Inducer, Proposal
from autoconn.oracle import Draw
from autoconn.pipeline.context import RunContext
from autoconn.pipeline.runlog import RunLog
from autoconn.pipeline.state import (
    CandidateRecord,
    CheckedCandidate,
    CounterexampleRecord,
    FeedbackRecord,
    InductionState,
)
from autoconn.task import Example, split_task
from autoconn.verdict import make_record, oracle_block

MAX_COUNTEREXAMPLES = 3
CANDIDATE_TIMEOUT = 180.0  # seconds one candidate may take in the sandbox, at most
MIN_CANDIDATE_TIMEOUT = 5.0  # below this a compile cannot finish: the budget is spent


class Node(Protocol):
    """A node as LangGraph calls it: the state, and the run's context as ``runtime.context``."""

    def __call__(self, state: InductionState, *, runtime: Runtime[RunContext]) -> InductionState: ...


# --- small readers of the state ---------------------------------------------------------------

def run_log(state: InductionState) -> RunLog:
    return RunLog(state["config"]["runs_dir"], state["config"]["run_id"])


def examples_of(state: InductionState, context: RunContext, key: str) -> list[Example]:
    """The task's examples whose indices the state keeps under `key` (induction/validation/sealed_ids)."""
    task = context.task(state)
    ids: list[int] = state.get(key, [])  # type: ignore[assignment]  # key is one of the *_ids fields
    return [task.examples[i] for i in ids]


def budget_left(state: InductionState) -> str:
    """'' while the run may go on, else why it must stop."""
    config = state["config"]
    if state.get("attempts", 0) >= config["max_attempts"]:
        return f"attempt budget spent ({config['max_attempts']} candidates checked)"
    if state.get("elapsed", 0.0) >= config["budget_seconds"]:
        return f"time budget spent ({config['budget_seconds']:.0f} s)"
    return ""


def seconds_left(state: InductionState) -> float:
    return max(0.0, state["config"]["budget_seconds"] - state.get("elapsed", 0.0))


def feedback_from_record(item: FeedbackRecord) -> Feedback:
    return Feedback(item["source"], item["stage"], item["message"],
                    tuple(Counterexample(tuple(c["input"]), tuple(c["expected"]), tuple(c["got"]))
                          for c in item.get("counterexamples", [])))


def feedback_objects(state: InductionState) -> list[Feedback]:
    return [feedback_from_record(item) for item in state.get("feedback", [])]


def feedback_record(feedback: Feedback) -> FeedbackRecord:
    return {"source": feedback.source, "stage": feedback.stage, "message": feedback.message,
            "counterexamples": [counterexample_record(c) for c in feedback.counterexamples]}


def counterexamples(verification: Verification) -> list[CounterexampleRecord]:
    shortest_first = sorted(verification.failures, key=lambda f: len(f.inputs))
    return [counterexample_record(f) for f in shortest_first[:MAX_COUNTEREXAMPLES]]


def counterexample_record(found: Counterexample | Failure) -> CounterexampleRecord:
    """A wrong answer as plain data, whether the host scored it (Failure) or an inducer reported it."""
    return {"input": list(found.inputs), "expected": list(found.expected), "got": list(found.got)}


def revealed(state: InductionState) -> int:
    """Held-out counterexamples shown to the inducers so far (validation and oracle validation)."""
    return sum(len(f.get("counterexamples", [])) for f in state.get("feedback", []) if f["stage"] in ("validate", "oracle"))


def smallest(pool: list[CheckedCandidate]) -> CheckedCandidate:
    """Among validated candidates, the fewest layers, then parameters, then the earliest."""
    return min(pool, key=lambda c: ((c.get("size") or {}).get("layers") or 0, (c.get("size") or {}).get("parameters") or 0,
                                    c["attempt"]))


def add_usage(totals: dict[str, dict[str, Any]], name: str, used: Any) -> dict[str, dict[str, Any]]:
    """Adds what one propose() call used to the run's totals (kept in state, so resumes add up)."""
    entry = dict(totals.get(name, {}))
    entry["rounds"] = entry.get("rounds", 0) + 1
    for key, value in dict(used).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            entry[key] = round(entry.get(key, 0) + value, 3)
        else:
            entry[key] = value
    return {**totals, name: entry}


def stop_reason(state: InductionState, proposal: Proposal, name: str) -> str:
    """Why the last inducer gave nothing: its failure, its own word, else budget or space."""
    if proposal.error:
        return f"{name} inducer failed: {proposal.error}"
    if proposal.stop_message:
        return f"{name} inducer gave no candidate: {proposal.stop_message}"
    if seconds_left(state) <= 1.0:
        return f"time budget spent ({state['config']['budget_seconds']:.0f} s) before {name} found another candidate"
    return f"{name} inducer has no more candidates"


def ask(inducer: Inducer, *args: Any, **kwargs: Any) -> Proposal:
    """One propose() call; an inducer that raises (a bug, an endpoint down) gives an error Proposal,
    so the run moves on to the next inducer instead of dying."""
    try:
        proposal = inducer.propose(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - reported in the run log and the summary
        return Proposal(error=f"{type(error).__name__}: {error}")
    if not isinstance(proposal, Proposal):
        return Proposal(error=f"inducer {inducer.name!r} returned {type(proposal).__name__}, not a Proposal")
    return proposal


# --- the nodes ----------------------------------------------------------------------------------

def observe(state: InductionState, *, runtime: Runtime[RunContext]) -> InductionState:
    """Reads the task, splits it into three sets and draws the oracle's inputs (a broken oracle
    stops the run before any search)."""
    context, config = runtime.context, state["config"]
    task = context.task(state)
    split = split_task(task, sealed=bool(config.get("sealed_set", True)))
    position = {id(e): i for i, e in enumerate(task.examples)}

    def longest(group: Sequence[Example]) -> int:
        return max((len(e.inputs) for e in group), default=0)

    summary = task.summary() | {"induction_examples": len(split.induction), "validation_examples": len(split.validation),
                                "sealed_examples": len(split.sealed), "induction_max_length": longest(split.induction),
                                "validation_max_length": longest(split.validation),
                                "sealed_max_length": longest(split.sealed), "oracle": config.get("oracle")}
    if config.get("oracle"):
        draw: Draw
        for draw in ("validation", "sealed"):
            made = context.oracle_draw(state, draw)
            summary[f"oracle_{draw}_inputs"] = len(made.examples) if made else 0
    run_log(state).event("observe", task=summary)
    return {"task_sha256": task.sha256, "task_summary": summary,
            "settings": default_settings(task.max_seq_len).to_json(),
            "induction_ids": [position[id(e)] for e in split.induction],
            "validation_ids": [position[id(e)] for e in split.validation],
            "sealed_ids": [position[id(e)] for e in split.sealed],
            "active_inducer": context.inducer_chain[0]}


def induce(state: InductionState, *, runtime: Runtime[RunContext]) -> InductionState:
    """Asks the active inducer for candidates; when it has none, the next one in the chain."""
    context, config = runtime.context, state["config"]
    induction = examples_of(state, context, "induction_ids")
    task = context.task(state).induction_view(induction)  # nothing held out reaches an inducer
    chain = context.inducer_chain
    active = state.get("active_inducer", chain[0])
    notes: list[str] = []
    rejected: list[FeedbackRecord] = []
    usage = dict(state.get("inducer_usage", {}))
    log = run_log(state)
    while True:
        feedback = feedback_objects(state) + [feedback_from_record(r) for r in rejected]
        proposal = ask(context.inducers[active], task, induction, feedback,
                       budget_seconds=max(1.0, seconds_left(state)), limit=config["batch_size"])
        usage = add_usage(usage, active, proposal.usage)
        rejected += [feedback_record(f) for f in proposal.rejected]
        saved = log.save_transcript(active, usage[active]["rounds"], list(proposal.transcript)) if proposal.transcript else None
        log.event("induce", inducer=active, proposed=len(proposal.candidates), rejected=len(proposal.rejected),
                  error=proposal.error or None, usage=usage.get(active), transcript=saved)
        if proposal.candidates:
            break
        position = chain.index(active)
        if position + 1 >= len(chain):
            return {"pending": [], "status": "failed", "reason": stop_reason(state, proposal, active),
                    "active_inducer": active, "inducer_log": notes, "inducer_usage": usage, "feedback": rejected}
        why = f" ({proposal.error})" if proposal.error else ""
        notes.append(f"{active} gave no candidate{why}; falling back to {chain[position + 1]}")
        active = chain[position + 1]
    pending: list[CandidateRecord] = [{"source": c.source, "origin": c.origin, "summary": c.summary}
                                      for c in proposal.candidates]
    return {"pending": pending, "active_inducer": active, "inducer_log": notes, "inducer_usage": usage,
            "compare_batch": proposal.compare_candidates, "feedback": rejected}


def check(state: InductionState, *, runtime: Runtime[RunContext]) -> InductionState:
    """Compiles the next pending candidate in the sandbox, loads the returned weights here through
    the host's checks, and scores them on the induction set."""
    context = runtime.context
    task = context.task(state)
    pending = list(state.get("pending", []))
    candidate = pending.pop(0)
    attempt = state.get("attempts", 0) + 1
    log = run_log(state)
    source_path = log.save_candidate(attempt, candidate["source"])
    induction = examples_of(state, context, "induction_ids")
    settings = CompileSettings.from_json(state["settings"])
    context.on_event("check", {"attempt": attempt, "summary": candidate.get("summary", "")})
    timeout = min(CANDIDATE_TIMEOUT, max(MIN_CANDIDATE_TIMEOUT, seconds_left(state)))
    result = context.sandbox().run(make_job(candidate["source"], task, settings, induction, timeout_seconds=timeout))
    current: CheckedCandidate = {"candidate": candidate, "attempt": attempt, "source_path": source_path,
                                 "ok": bool(result.ok), "stage": result.stage, "error": result.error,
                                 "size": result.size, "spec": result.spec, "seconds": result.seconds,
                                 "output_encoding": result.output_encoding}
    problem: tuple[str, str] | None = None  # (stage, message)
    found: list[CounterexampleRecord] = []
    if not result.ok:
        problem = (result.stage or "check", result.error)
    elif not result.weights_path or not result.spec:
        problem = ("run", "the sandbox returned no weights")
    elif kind_problem := output_kind_problem(task, result):
        problem = ("check", kind_problem)
    else:  # keep the weights with the run (the sandbox's copy is temporary) and score them here
        kept = log.dir / "candidates" / f"{attempt:03d}.npz"
        shutil.copyfile(result.weights_path, kept)
        current["weights"] = str(kept)
        current["graph"] = display_graph(result)
        result, conn = context.load_weights(result, task, settings, str(kept))  # spec and arrays checked first
        if conn is None:
            current["ok"], current["stage"], current["error"] = False, result.stage, result.error
            problem = (result.stage or "weights", result.error)
        else:
            context.keep_conn(str(kept), conn)
            scored = score_runtime(conn, induction, task.output_kind)
            current["induction"] = scored.to_json(max_failures=0, examples="induction")
            if not scored.passed:
                found = counterexamples(scored)
                wrong = scored.total - scored.correct
                problem = ("check", f"compiled model wrong on {wrong} of {scored.total} induction examples")
    feedback: FeedbackRecord | None = None
    if problem:
        feedback = {"source": candidate["source"], "stage": problem[0], "message": problem[1], "counterexamples": found}
    current["passed_check"] = feedback is None
    log.event("check", attempt=attempt, inducer=candidate.get("origin"), summary=candidate.get("summary"),
              source=source_path, ok=result.ok, stage=result.stage, error=result.error or None,
              induction=current.get("induction"), feedback=feedback, seconds=round(result.seconds, 3))
    return {"pending": pending, "attempts": attempt, "current": current, "feedback": [feedback] if feedback else []}


def validate(state: InductionState, *, runtime: Runtime[RunContext]) -> InductionState:
    """The validation set, then the oracle's validation draw: failures come back as feedback."""
    context = runtime.context
    task = context.task(state)
    current: CheckedCandidate = dict(state.get("current") or {})  # type: ignore[assignment]
    conn = context.conn(current["weights"], current["spec"] or {})
    scored = score_runtime(conn, examples_of(state, context, "validation_ids"), task.output_kind)
    current["validation"] = scored.to_json(max_failures=0, examples="validation")
    stage, failed = "validate", None if scored.passed or scored.total == 0 else scored
    if failed is None and (draw := context.oracle_draw(state, "validation")) is not None:
        by_oracle = score_runtime(conn, draw.examples, task.output_kind)
        current["oracle_validation"] = by_oracle.to_json(max_failures=0, examples="oracle validation draw")
        current["oracle_exhaustive"] = [row for row in by_length(draw.examples, by_oracle)
                                        if row["length"] in draw.exhaustive_lengths]
        stage, failed = "oracle", None if by_oracle.passed else by_oracle
    log = run_log(state)
    if failed is None:
        log.event("validate", attempt=current["attempt"], passed=True, validation=current["validation"],
                  oracle=current.get("oracle_validation"))
        size = current.get("size") or {}
        best = f"attempt {current['attempt']}: {size.get('layers')} layers, {size.get('parameters')} parameters"
        return {"current": current, "validated_pool": [current], "best": best}
    where = "validation examples" if stage == "validate" else "oracle inputs"
    feedback: FeedbackRecord = {
        "source": current["candidate"]["source"], "stage": stage, "counterexamples": counterexamples(failed),
        "message": f"right on every induction example but wrong on {failed.total - failed.correct} of "
                   f"{failed.total} {where} (lengths up to {failed.max_length})"}
    log.event("validate", attempt=current["attempt"], passed=False, feedback=feedback)
    return {"current": current, "feedback": [feedback]}


def test(state: InductionState, *, runtime: Runtime[RunContext]) -> InductionState:
    """The verdict: the smallest validated candidate on the sealed set and the oracle's sealed
    draw, once. Failing it ends the run; nothing about it is ever fed back."""
    context, config = runtime.context, state["config"]
    task = context.task(state)
    winner: CheckedCandidate = dict(smallest(state.get("validated_pool") or []))  # type: ignore[assignment]
    conn = context.conn(winner["weights"], winner["spec"] or {})
    sealed_examples = examples_of(state, context, "sealed_ids")
    sealed = score_runtime(conn, sealed_examples, task.output_kind) if sealed_examples else None
    draw = context.oracle_draw(state, "sealed")
    oracle = score_runtime(conn, draw.examples, task.output_kind) if draw is not None else None
    validation = score_runtime(conn, examples_of(state, context, "validation_ids"), task.output_kind)
    oracle_json = None
    if draw is not None and oracle is not None:  # every input of the exhaustive lengths, scored in validate
        rows = winner.get("oracle_exhaustive", []) + by_length(draw.examples, oracle)
        oracle_json = oracle_block(str(config.get("oracle")), rows, draw.exhaustive_lengths, draw.outside_domain,
                                   task.max_seq_len)
    record = make_record(how="oracle" if draw is not None else "examples", held_out=bool(sealed_examples) or draw is not None,
                         compiled_max_seq_len=task.max_seq_len, sealed=sealed, validation=validation,
                         validation_revealed=revealed(state), oracle=oracle_json)
    winner["verified"] = record
    failures = [(what, v) for what, v in (("sealed examples", sealed), ("oracle inputs", oracle))
                if v is not None and not v.passed]
    log = run_log(state)
    if failures:
        what, failed = failures[0]
        first = counterexamples(failed)[0]
        reason = (f"attempt {winner['attempt']} passed validation but failed the sealed test: wrong on "
                  f"{failed.total - failed.correct} of {failed.total} {what} no inducer saw (e.g. input {first['input']}: "
                  f"expected {first['expected']}, got {first['got']}); not registered")
        log.event("test", attempt=winner["attempt"], passed=False, reason=reason, verified=record)
        return {"status": "failed", "reason": reason, "tested": winner}
    log.event("test", attempt=winner["attempt"], passed=True, verified=record)
    return {"tested": winner, "status": "registering"}


def register(state: InductionState, *, runtime: Runtime[RunContext]) -> InductionState:
    """Writes the tested candidate to the library (one transaction: checking.register_checked)."""
    context, config = runtime.context, state["config"]
    winner = state.get("tested") or {}
    log = run_log(state)
    provenance = {"inducer": winner["candidate"].get("origin"), "run_id": config["run_id"],
                  "run_log": str(log.log_path), "attempts": winner["attempt"], "summary": winner["candidate"].get("summary")}
    entry = register_checked(config["library_dir"], config["name"], winner["candidate"]["source"], context.task(state),
                             CompileSettings.from_json(state["settings"]), size=winner.get("size") or {},
                             spec=winner.get("spec") or {}, weights=winner["weights"], verified=winner["verified"],
                             provenance=provenance, fusion=config.get("fusion"), force=config["force"],
                             run_id=config["run_id"], graph=winner.get("graph"), induction=winner.get("induction"))
    log.event("register", name=config["name"], program=str(entry.program_path), attempt=winner["attempt"],
              validated_candidates=len(state.get("validated_pool") or []))
    return {"registered": str(entry.program_path), "verified": winner, "status": "verified"}


def finish(state: InductionState, *, runtime: Runtime[RunContext]) -> InductionState:
    reason = state.get("reason") or ("" if state.get("status") == "verified" else budget_left(state))
    status = "verified" if state.get("registered") else "failed"
    run_log(state).event("finish", status=status, reason=reason or None, attempts=state.get("attempts", 0))
    return {"status": status, "reason": reason}


NODES: dict[str, Node] = {"observe": observe, "induce": induce, "check": check, "validate": validate, "test": test,
                          "register": register, "finish": finish}


def timed(name: str, node: Node) -> Node:
    """Adds the node's wall time to state['elapsed'] so budgets survive a resume, and tells the
    run's event sink which stage is running (the progress line)."""

    def run(state: InductionState, *, runtime: Runtime[RunContext]) -> InductionState:
        start = time.monotonic()
        runtime.context.on_event("stage", {"stage": name, "attempts": state.get("attempts", 0),
                                           "elapsed": state.get("elapsed", 0.0),
                                           "budget": state["config"]["budget_seconds"], "best": state.get("best", "")})
        update = node(state, runtime=runtime)
        update["elapsed"] = state.get("elapsed", 0.0) + (time.monotonic() - start)
        return update

    run.__name__ = name
    return run
