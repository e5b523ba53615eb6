"""The graph's nodes: observe -> induce -> check -> verify -> register, and the routing between
them. Each node reads plain state, does one job and returns the fields it changed."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from autoconn.checking import conn_metadata, fusion_for_task, host_scored, make_job, output_kind_problem
from autoconn.conn.artifact import Library
from autoconn.conn.compile import CompileSettings, default_settings
from autoconn.conn.runtime import ConnInputError, ConnRuntime, ConnSpec
from autoconn.conn.verify import Verification, verify_outputs
from autoconn.inducers.base import Counterexample, Feedback, Inducer
from autoconn.pipeline.runlog import RunLog
from autoconn.pipeline.state import InductionState
from autoconn.task import Example, Task, load_task, split_task

MAX_COUNTEREXAMPLES = 3
CANDIDATE_TIMEOUT = 180.0  # seconds one candidate may take in the sandbox (less when the run's budget has less left)
EventSink = Callable[[str, dict[str, Any]], None]


@dataclass
class Resources:
    """Live objects the nodes use but the state must not hold (not checkpointed)."""

    inducers: dict[str, Inducer]
    inducer_chain: list[str]  # the order `auto` tries inducers in; one name otherwise
    open_sandbox: Callable[[], Any]
    on_event: EventSink = lambda kind, data: None
    owns_sandbox: bool = True  # False when a caller (e.g. bench) shares one sandbox across runs
    _sandbox: Any = None
    _task: Optional[Task] = None
    _task_key: tuple[str, str] = ("", "")

    def sandbox(self) -> Any:
        if self._sandbox is None:
            self._sandbox = self.open_sandbox()
        return self._sandbox

    def close(self) -> None:
        if self._sandbox is not None and self.owns_sandbox:
            self._sandbox.close()
            self._sandbox = None

    def task(self, state: InductionState) -> Task:
        """The task, re-read from its file (state keeps only the path and hash)."""
        config = state["config"]
        key = (config["task_path"], state.get("task_sha256", ""))
        if self._task is None or self._task_key != key:
            self._task = load_task(config["task_path"], name=config["name"], description=config["description"],
                                   max_seq_len=config["max_seq_len"])
            if state.get("task_sha256") and self._task.sha256 != state["task_sha256"]:
                raise RuntimeError(f"{config['task_path']} changed since run {config['run_id']} started; start a new run")
            self._task_key = (config["task_path"], self._task.sha256)
        return self._task


def budget_left(state: InductionState) -> str:
    """'' while the run may go on, else why it must stop."""
    config = state["config"]
    if state.get("attempts", 0) >= config["max_attempts"]:
        return f"attempt budget spent ({config['max_attempts']} candidates checked)"
    if state.get("elapsed", 0.0) >= config["budget_seconds"]:
        return f"time budget spent ({config['budget_seconds']:.0f} s)"
    return ""


def feedback_objects(state: InductionState) -> list[Feedback]:
    result = []
    for item in state.get("feedback", []):
        examples = tuple(Counterexample(tuple(c["input"]), tuple(c["expected"]), tuple(c["got"]))
                         for c in item.get("counterexamples", []))
        result.append(Feedback(item["source"], item["stage"], item["message"], examples))
    return result


def counterexamples(verification: Verification) -> list[dict[str, Any]]:
    shortest_first = sorted(verification.failures, key=lambda f: len(f.inputs))
    return [f.to_json() for f in shortest_first[:MAX_COUNTEREXAMPLES]]


def timed(name: str, node: Callable[[InductionState], dict[str, Any]], resources: Resources) -> Callable[[InductionState], dict[str, Any]]:
    """Adds the node's wall time to state['elapsed'] so budgets survive a resume."""

    def run(state: InductionState) -> dict[str, Any]:
        start = time.monotonic()
        resources.on_event("stage", {"stage": name, "attempts": state.get("attempts", 0), "elapsed": state.get("elapsed", 0.0)})
        update = node(state)
        update["elapsed"] = state.get("elapsed", 0.0) + (time.monotonic() - start)
        return update

    return run


def make_nodes(resources: Resources) -> dict[str, Callable[[InductionState], dict[str, Any]]]:
    def log(state: InductionState) -> RunLog:
        return RunLog(state["config"]["runs_dir"], state["config"]["run_id"])

    def examples(state: InductionState, key: str) -> list[Example]:
        task = resources.task(state)
        return [task.examples[i] for i in state[key]]  # type: ignore[literal-required]

    def observe(state: InductionState) -> dict[str, Any]:
        task = resources.task(state)
        split = split_task(task)
        position = {id(e): i for i, e in enumerate(task.examples)}
        settings = default_settings(task.max_seq_len)
        summary = task.summary() | {"induction_examples": len(split.induction), "heldout_examples": len(split.heldout),
                                    "induction_max_length": max(len(e.inputs) for e in split.induction),
                                    "heldout_max_length": max(len(e.inputs) for e in split.heldout)}
        log(state).event("observe", task=summary)
        return {"task_sha256": task.sha256, "task_summary": summary, "settings": settings.to_json(),
                "induction_ids": [position[id(e)] for e in split.induction],
                "heldout_ids": [position[id(e)] for e in split.heldout],
                "active_inducer": resources.inducer_chain[0]}

    def induce(state: InductionState) -> dict[str, Any]:
        task = resources.task(state)
        chain = resources.inducer_chain
        active = state.get("active_inducer", chain[0])
        notes = list(state.get("inducer_log", []))
        usage = dict(state.get("inducer_usage", {}))
        config = state["config"]
        while True:
            inducer = resources.inducers[active]
            remaining = max(1.0, config["budget_seconds"] - state.get("elapsed", 0.0))
            before = inducer_usage(inducer)
            try:
                proposed = inducer.propose(task, examples(state, "induction_ids"), feedback_objects(state),
                                           budget_seconds=remaining, limit=config["batch_size"])
                problem = ""
            except Exception as error:  # an inducer failing (endpoint down...) moves on to the next one
                proposed, problem = [], f"{type(error).__name__}: {error}"
            usage = add_usage(usage, active, before, inducer_usage(inducer))
            transcript = getattr(inducer, "last_transcript", None)
            saved = log(state).save_transcript(active, usage[active]["rounds"], transcript) if transcript else None
            log(state).event("induce", inducer=active, proposed=len(proposed), error=problem or None,
                             usage=usage.get(active), transcript=saved)
            if proposed:
                break
            position = chain.index(active)
            if position + 1 >= len(chain):
                why = f"{active} inducer has no more candidates" + (f" ({problem})" if problem else "")
                return {"pending": [], "status": "failed", "reason": why, "active_inducer": active, "inducer_log": notes,
                        "inducer_usage": usage}
            notes.append(f"{active} gave no candidate{f' ({problem})' if problem else ''}; falling back to {chain[position + 1]}")
            active = chain[position + 1]
        return {"pending": [c.to_json() for c in proposed], "active_inducer": active, "inducer_log": notes,
                "inducer_usage": usage, "compare_batch": bool(getattr(inducer, "compare_candidates", False))}

    def check(state: InductionState) -> dict[str, Any]:
        task = resources.task(state)
        pending = list(state.get("pending", []))
        candidate = pending.pop(0)
        attempt = state.get("attempts", 0) + 1
        run_log = log(state)
        source_path = run_log.save_candidate(attempt, candidate["source"])
        induction = examples(state, "induction_ids")
        settings = CompileSettings.from_json(state["settings"])
        resources.on_event("check", {"attempt": attempt, "summary": candidate.get("summary", "")})
        left = state["config"]["budget_seconds"] - state.get("elapsed", 0.0)  # the budget is the budget
        job = make_job(candidate["source"], task, settings, induction, timeout_seconds=max(1.0, min(CANDIDATE_TIMEOUT, left)))
        result = resources.sandbox().run(job)
        scored: Optional[Verification] = None
        if result.ok:  # the verdict comes from the returned weights, run here (host_verdict), never from the worker
            result, scored = host_scored(result, task, settings, induction)
        current: dict[str, Any] = {"candidate": candidate, "attempt": attempt, "source_path": source_path,
                                   "ok": bool(result.ok), "stage": result.stage, "error": result.error,
                                   "size": result.size, "spec": result.spec, "seconds": result.seconds,
                                   "output_encoding": getattr(result, "output_encoding", None)}
        feedback: Optional[dict[str, Any]] = None
        if result.ok:
            assert scored is not None
            problem = output_kind_problem(task, result)
            current["induction"] = scored.to_json(max_failures=0)
            if problem:
                feedback = {"stage": "check", "message": problem, "counterexamples": []}
            elif not scored.passed:
                feedback = {"stage": "check", "message": f"compiled model wrong on {scored.total - scored.correct} of {scored.total} induction examples",
                            "counterexamples": counterexamples(scored)}
            elif not result.weights_path or not result.spec:
                feedback = {"stage": "run", "message": "the sandbox returned no weights", "counterexamples": []}
            else:  # keep the weights with the run: the sandbox's copy is temporary
                kept = run_log.dir / "candidates" / f"{attempt:03d}.npz"
                shutil.copyfile(result.weights_path, kept)
                current["weights"] = str(kept)
        else:
            feedback = {"stage": result.stage or "check", "message": result.error, "counterexamples": []}
        if feedback:
            feedback["source"] = candidate["source"]
        current["passed_check"] = feedback is None
        run_log.event("check", attempt=attempt, inducer=candidate.get("origin"), summary=candidate.get("summary"),
                      source=source_path, ok=result.ok, stage=result.stage, error=result.error or None,
                      induction=current.get("induction"), feedback=feedback, seconds=round(result.seconds, 3))
        update: dict[str, Any] = {"pending": pending, "attempts": attempt, "current": current}
        if feedback:
            update["feedback"] = [*state.get("feedback", []), feedback]
        return update

    def verify(state: InductionState) -> dict[str, Any]:
        task = resources.task(state)
        current = dict(state["current"] or {})
        heldout = examples(state, "heldout_ids")
        # Run the held-out set here, from the weights (plain numbers): the verdict never rests
        # on what the sandboxed process said about itself.
        runtime = ConnRuntime.load(current["weights"], ConnSpec.from_json(current["spec"]))
        try:
            outputs: list[Any] = runtime.run([list(e.inputs) for e in heldout])
        except ConnInputError as error:
            outputs = [None] * len(heldout)
            current["error"] = str(error)
        current["heldout_outputs"] = outputs
        scored = verify_outputs(heldout, outputs, task.output_kind)
        current["heldout"] = scored.to_json(max_failures=MAX_COUNTEREXAMPLES)
        run_log = log(state)
        if scored.passed:
            run_log.event("verify", attempt=current["attempt"], passed=True, heldout=scored.to_json(max_failures=0))
            return {"current": current, "verified_pool": [*state.get("verified_pool", []), current]}
        feedback = {"source": current["candidate"]["source"], "stage": "verify",
                    "message": f"right on every induction example but wrong on {scored.total - scored.correct} of {scored.total} held-out examples",
                    "counterexamples": counterexamples(scored)}
        run_log.event("verify", attempt=current["attempt"], passed=False, heldout=scored.to_json(max_failures=0), feedback=feedback)
        return {"current": current, "feedback": [*state.get("feedback", []), feedback]}

    def register(state: InductionState) -> dict[str, Any]:
        task = resources.task(state)
        config = state["config"]
        winner = smallest(state.get("verified_pool") or [])
        settings = CompileSettings.from_json(state["settings"])
        heldout = examples(state, "heldout_ids")
        scored = verify_outputs(heldout, winner["heldout_outputs"], task.output_kind)
        run_log = log(state)
        provenance = {"inducer": winner["candidate"].get("origin"), "run_id": config["run_id"],
                      "run_log": str(run_log.log_path), "attempts": winner["attempt"],
                      "summary": winner["candidate"].get("summary")}

        fusion = fusion_for_task(config["name"], task, config.get("fusion"),
                                 output_values=winner["spec"].get("output_decoding")).to_json()
        meta = conn_metadata(task, settings, winner["size"], winner["spec"], scored, provenance, fusion=fusion)
        meta["induction"] = winner.get("induction")
        entry = Library(config["library_dir"]).write(config["name"], winner["candidate"]["source"], meta,
                                                     weights_file=winner["weights"], force=config["force"])
        run_log.event("register", name=config["name"], program=str(entry.program_path), attempt=winner["attempt"],
                      verified_candidates=len(state.get("verified_pool") or []))
        return {"registered": str(entry.program_path), "verified": winner, "status": "verified"}

    def finish(state: InductionState) -> dict[str, Any]:
        reason = state.get("reason") or ("" if state.get("status") == "verified" else budget_left(state))
        status = "verified" if state.get("registered") else "failed"
        log(state).event("finish", status=status, reason=reason or None, attempts=state.get("attempts", 0))
        return {"status": status, "reason": reason}

    return {"observe": observe, "induce": induce, "check": check, "verify": verify, "register": register, "finish": finish}


def after_induce(state: InductionState) -> str:
    return "check" if state.get("pending") and state.get("status") != "failed" else "finish"


def next_attempt(state: InductionState) -> str:
    """After a candidate is done: register once something verified and nothing pending is worth
    comparing with it; stop on budget; else the next pending one, else ask again."""
    pool, pending = state.get("verified_pool") or [], state.get("pending")
    if pool and (not pending or not state.get("compare_batch") or budget_left(state)):
        return "register"
    if budget_left(state):
        return "finish"
    return "check" if pending else "induce"


def after_check(state: InductionState) -> str:
    current = state.get("current") or {}
    return "verify" if current.get("passed_check") else next_attempt(state)


def after_verify(state: InductionState) -> str:
    return next_attempt(state)


def smallest(pool: list[dict[str, Any]]) -> dict[str, Any]:
    """Among verified candidates, the fewest layers, then parameters, then the earliest."""
    return min(pool, key=lambda c: ((c.get("size") or {}).get("layers") or 0, (c.get("size") or {}).get("parameters") or 0,
                                    c["attempt"]))


def inducer_usage(inducer: Inducer) -> dict[str, Any]:
    """An inducer's own counters (the LLM's calls and tokens); {} for inducers without any."""
    usage = getattr(inducer, "usage", None)
    return dict(usage()) if callable(usage) else {}


def add_usage(totals: dict[str, dict[str, Any]], name: str, before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Adds what one propose() call used to the run's totals (kept in state, so resumes add up)."""
    entry = dict(totals.get(name, {}))
    entry["rounds"] = entry.get("rounds", 0) + 1
    for key, value in after.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            entry[key] = round(entry.get(key, 0) + value - before.get(key, 0), 3)
        else:
            entry[key] = value
    return {**totals, name: entry}
