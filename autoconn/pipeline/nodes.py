"""The graph's nodes and the routing between them:

    observe -> induce -> check -> validate -> test -> register -> finish

Each node reads plain state, does one job and returns the fields it changed. Three sets, one
rule each: an inducer sees the induction set (through ``Task.induction_view``); validation
counterexamples (and the oracle's validation draw) come back to it as feedback; the sealed set
(and the oracle's sealed draw) is scored once, for the winner, and is never revealed. Every
score comes from running the returned weights here, on the host: nothing the sandboxed
process says about its own outputs is believed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from autoconn.checking import (
    conn_metadata,
    display_graph,
    fusion_for_task,
    host_runtime,
    make_job,
    output_kind_problem,
)
from autoconn.conn.artifact import Library, LibraryError
from autoconn.conn.compile import CompileSettings, default_settings
from autoconn.conn.runtime import ConnRuntime, ConnSpec
from autoconn.conn.verify import Verification, by_length, score_runtime
from autoconn.faults import kill_point
from autoconn.inducers.base import Counterexample, Feedback, Inducer
from autoconn.oracle import Draw, OracleDraw, OracleSpec, check_oracle, make_draw
from autoconn.pipeline.runlog import RunLog
from autoconn.pipeline.state import InductionState
from autoconn.task import Example, Task, TaskError, load_task, split_task
from autoconn.verdict import make_record, oracle_block

MAX_COUNTEREXAMPLES = 3
CANDIDATE_TIMEOUT = 180.0  # seconds one candidate may take in the sandbox, at most
MIN_CANDIDATE_TIMEOUT = 5.0  # below this a compile cannot finish: the budget is spent
EventSink = Callable[[str, dict[str, Any]], None]


class TaskChanged(TaskError):
    """The task file changed since the run started: resuming would mix two tasks."""


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
    _draws: dict[tuple[str, str], OracleDraw] = field(default_factory=dict)
    _runtime: tuple[str, Optional[ConnRuntime]] = ("", None)

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
            task = load_task(config["task_path"], name=config["name"], description=config["description"],
                             max_seq_len=config["max_seq_len"])
            if state.get("task_sha256") and task.sha256 != state["task_sha256"]:
                raise TaskChanged(config["task_path"], None, f"changed since run {config['run_id']} started",
                                  "start a new run (autoconn induce TASK.jsonl), or restore the file to resume")
            self._task, self._task_key = task, (config["task_path"], task.sha256)
        return self._task

    def oracle_draw(self, state: InductionState, draw: Draw) -> Optional[OracleDraw]:
        """The oracle's inputs and outputs for one draw (None without an oracle); computed once."""
        text = state["config"].get("oracle")
        if not text:
            return None
        if (text, draw) not in self._draws:
            task = self.task(state)
            spec = OracleSpec.parse(text)
            rule = check_oracle(spec, task)
            # the sealed draw leaves out the exhaustive lengths: the validation draw enumerated those
            # same inputs completely, on the same weights, before any candidate reaches the verdict
            self._draws[(text, draw)] = make_draw(rule, spec, task.input_vocab, task.output_kind, task.max_seq_len, draw,
                                                  task.sha256, include_exhaustive=draw == "validation")
        return self._draws[(text, draw)]

    def runtime(self, weights: str, spec: dict[str, Any]) -> ConnRuntime:
        """The candidate's CoNN loaded from its weights (kept while the same candidate is scored;
        after a resume, loaded again through the same checks)."""
        if self._runtime[0] != weights or self._runtime[1] is None:
            self._runtime = (weights, ConnRuntime.load(weights, ConnSpec.from_json(spec)))
        return self._runtime[1]  # type: ignore[return-value]

    def keep_runtime(self, weights: str, runtime: ConnRuntime) -> None:
        self._runtime = (weights, runtime)


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


def revealed(state: InductionState) -> int:
    """Held-out counterexamples shown to the inducers so far (validation and oracle validation)."""
    return sum(len(f.get("counterexamples", [])) for f in state.get("feedback", []) if f["stage"] in ("validate", "oracle"))


def timed(name: str, node: Callable[[InductionState], dict[str, Any]], resources: Resources) -> Callable[[InductionState], dict[str, Any]]:
    """Adds the node's wall time to state['elapsed'] so budgets survive a resume."""

    def run(state: InductionState) -> dict[str, Any]:
        start = time.monotonic()
        resources.on_event("stage", {"stage": name, "attempts": state.get("attempts", 0), "elapsed": state.get("elapsed", 0.0),
                                     "budget": state["config"]["budget_seconds"], "best": state.get("best", "")})
        update = node(state)
        update["elapsed"] = state.get("elapsed", 0.0) + (time.monotonic() - start)
        return update

    return run


def make_nodes(resources: Resources) -> dict[str, Callable[[InductionState], dict[str, Any]]]:
    def log(state: InductionState) -> RunLog:
        return RunLog(state["config"]["runs_dir"], state["config"]["run_id"])

    def examples(state: InductionState, key: str) -> list[Example]:
        task = resources.task(state)
        return [task.examples[i] for i in state.get(key, [])]  # type: ignore[literal-required]

    def observe(state: InductionState) -> dict[str, Any]:
        config = state["config"]
        task = resources.task(state)
        split = split_task(task, sealed=bool(config.get("sealed_set", True)))
        position = {id(e): i for i, e in enumerate(task.examples)}
        settings = default_settings(task.max_seq_len)
        longest = lambda group: max((len(e.inputs) for e in group), default=0)  # noqa: E731
        summary = task.summary() | {"induction_examples": len(split.induction), "validation_examples": len(split.validation),
                                    "sealed_examples": len(split.sealed), "induction_max_length": longest(split.induction),
                                    "validation_max_length": longest(split.validation),
                                    "sealed_max_length": longest(split.sealed), "oracle": config.get("oracle")}
        if config.get("oracle"):  # draw now: a broken oracle stops the run before any search
            for draw in ("validation", "sealed"):
                made = resources.oracle_draw(state, draw)  # type: ignore[arg-type]
                summary[f"oracle_{draw}_inputs"] = len(made.examples) if made else 0
        log(state).event("observe", task=summary)
        return {"task_sha256": task.sha256, "task_summary": summary, "settings": settings.to_json(),
                "induction_ids": [position[id(e)] for e in split.induction],
                "validation_ids": [position[id(e)] for e in split.validation],
                "sealed_ids": [position[id(e)] for e in split.sealed],
                "active_inducer": resources.inducer_chain[0]}

    def induce(state: InductionState) -> dict[str, Any]:
        induction = examples(state, "induction_ids")
        task = resources.task(state).induction_view(induction)  # nothing held out reaches an inducer
        chain = resources.inducer_chain
        active = state.get("active_inducer", chain[0])
        notes = list(state.get("inducer_log", []))
        usage = dict(state.get("inducer_usage", {}))
        config = state["config"]
        while True:
            inducer = resources.inducers[active]
            before = inducer_usage(inducer)
            try:
                proposed = inducer.propose(task, induction, feedback_objects(state),
                                           budget_seconds=max(1.0, seconds_left(state)), limit=config["batch_size"])
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
                why = stop_reason(state, inducer, active, problem)
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
        timeout = min(CANDIDATE_TIMEOUT, max(MIN_CANDIDATE_TIMEOUT, seconds_left(state)))
        job = make_job(candidate["source"], task, settings, induction, timeout_seconds=timeout)
        result = resources.sandbox().run(job)
        current: dict[str, Any] = {"candidate": candidate, "attempt": attempt, "source_path": source_path,
                                   "ok": bool(result.ok), "stage": result.stage, "error": result.error,
                                   "size": result.size, "spec": result.spec, "seconds": result.seconds,
                                   "output_encoding": getattr(result, "output_encoding", None)}
        feedback: Optional[dict[str, Any]] = None
        if not result.ok:
            feedback = {"stage": result.stage or "check", "message": result.error, "counterexamples": []}
        elif not result.weights_path or not result.spec:
            feedback = {"stage": "run", "message": "the sandbox returned no weights", "counterexamples": []}
        elif problem := output_kind_problem(task, result):
            feedback = {"stage": "check", "message": problem, "counterexamples": []}
        else:  # keep the weights with the run (the sandbox's copy is temporary) and score them here
            kept = run_log.dir / "candidates" / f"{attempt:03d}.npz"
            shutil.copyfile(result.weights_path, kept)
            current["weights"] = str(kept)
            current["graph"] = display_graph(result)
            result, runtime = host_runtime(result, task, settings, weights=str(kept))  # spec and arrays checked first
            if runtime is None:
                current.update(ok=False, stage=result.stage, error=result.error)
                feedback = {"stage": result.stage, "message": result.error, "counterexamples": []}
            else:
                resources.keep_runtime(str(kept), runtime)
                scored = score_runtime(runtime, induction, task.output_kind)
                current["induction"] = scored.to_json(max_failures=0, examples="induction")
                if not scored.passed:
                    feedback = {"stage": "check", "counterexamples": counterexamples(scored),
                                "message": f"compiled model wrong on {scored.total - scored.correct} of {scored.total} induction examples"}
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

    def validate(state: InductionState) -> dict[str, Any]:
        """The validation set, then the oracle's validation draw: failures come back as feedback."""
        task = resources.task(state)
        current = dict(state["current"] or {})
        runtime = resources.runtime(current["weights"], current["spec"])
        run_log = log(state)
        scored = score_runtime(runtime, examples(state, "validation_ids"), task.output_kind)
        current["validation"] = scored.to_json(max_failures=0, examples="validation")
        stage, failed = "validate", None if scored.passed or scored.total == 0 else scored
        if failed is None and (draw := resources.oracle_draw(state, "validation")) is not None:
            by_oracle = score_runtime(runtime, draw.examples, task.output_kind)
            current["oracle_validation"] = by_oracle.to_json(max_failures=0, examples="oracle validation draw")
            current["oracle_exhaustive"] = [row for row in by_length(draw.examples, by_oracle)
                                            if row["length"] in draw.exhaustive_lengths]
            stage, failed = "oracle", None if by_oracle.passed else by_oracle
        if failed is None:
            run_log.event("validate", attempt=current["attempt"], passed=True, validation=current["validation"],
                          oracle=current.get("oracle_validation"))
            size = current.get("size") or {}
            best = f"attempt {current['attempt']}: {size.get('layers')} layers, {size.get('parameters')} parameters"
            return {"current": current, "validated_pool": [*state.get("validated_pool", []), current], "best": best}
        where = "validation examples" if stage == "validate" else "oracle inputs"
        feedback = {"source": current["candidate"]["source"], "stage": stage, "counterexamples": counterexamples(failed),
                    "message": f"right on every induction example but wrong on {failed.total - failed.correct} of "
                               f"{failed.total} {where} (lengths up to {failed.max_length})"}
        run_log.event("validate", attempt=current["attempt"], passed=False, feedback=feedback)
        return {"current": current, "feedback": [*state.get("feedback", []), feedback]}

    def test(state: InductionState) -> dict[str, Any]:
        """The verdict: the smallest validated candidate on the sealed set and the oracle's sealed
        draw, once. Failing it ends the run; nothing about it is ever fed back."""
        task = resources.task(state)
        config = state["config"]
        winner = dict(smallest(state.get("validated_pool") or []))
        runtime = resources.runtime(winner["weights"], winner["spec"])
        sealed_examples = examples(state, "sealed_ids")
        sealed = score_runtime(runtime, sealed_examples, task.output_kind) if sealed_examples else None
        draw = resources.oracle_draw(state, "sealed")
        oracle = score_runtime(runtime, draw.examples, task.output_kind) if draw is not None else None
        validation = score_runtime(runtime, examples(state, "validation_ids"), task.output_kind)
        oracle_json = None
        if draw is not None and oracle is not None:  # every input of the exhaustive lengths, scored in validate
            rows = winner.get("oracle_exhaustive", []) + by_length(draw.examples, oracle)
            oracle_json = oracle_block(str(config.get("oracle")), rows, draw.exhaustive_lengths, draw.outside_domain,
                                       task.max_seq_len)
        record = make_record(how="oracle" if draw is not None else "examples", held_out=bool(sealed_examples) or draw is not None,
                             compiled_max_seq_len=task.max_seq_len, sealed=sealed, validation=validation,
                             validation_revealed=revealed(state), oracle=oracle_json)
        failures = [(what, v) for what, v in (("sealed examples", sealed), ("oracle inputs", oracle)) if v is not None and not v.passed]
        run_log = log(state)
        if failures:
            what, failed = failures[0]
            first = counterexamples(failed)[0]
            reason = (f"attempt {winner['attempt']} passed validation but failed the sealed test: wrong on "
                      f"{failed.total - failed.correct} of {failed.total} {what} no inducer saw (e.g. input {first['input']}: "
                      f"expected {first['expected']}, got {first['got']}); not registered")
            run_log.event("test", attempt=winner["attempt"], passed=False, reason=reason, verified=record)
            return {"status": "failed", "reason": reason, "tested": winner | {"verified": record}}
        run_log.event("test", attempt=winner["attempt"], passed=True, verified=record)
        return {"tested": winner | {"verified": record}, "status": "registering"}

    def register(state: InductionState) -> dict[str, Any]:
        task = resources.task(state)
        config = state["config"]
        winner = state["tested"] or {}
        settings = CompileSettings.from_json(state["settings"])
        run_log = log(state)
        provenance = {"inducer": winner["candidate"].get("origin"), "run_id": config["run_id"],
                      "run_log": str(run_log.log_path), "attempts": winner["attempt"],
                      "summary": winner["candidate"].get("summary")}
        fusion = fusion_for_task(config["name"], task, config.get("fusion"),
                                 output_values=winner["spec"].get("output_decoding")).to_json()
        meta = conn_metadata(task, settings, winner["size"], winner["spec"], winner["verified"], provenance, fusion=fusion)
        meta["induction"] = winner.get("induction")
        kill_point("register:before-write")
        try:
            entry = Library(config["library_dir"]).write(config["name"], winner["candidate"]["source"], meta,
                                                         weights_file=winner["weights"], force=config["force"],
                                                         run_id=config["run_id"], graph=winner.get("graph"))
        except LibraryError as error:  # the verdict stays checkpointed: a resume can still register it
            raise LibraryError(f"{error}\n  the verified CoNN is kept with run {config['run_id']}: "
                               f"`autoconn induce --resume {config['run_id']}` registers it once this is fixed "
                               "(add --force to replace the other entry)") from None
        run_log.event("register", name=config["name"], program=str(entry.program_path), attempt=winner["attempt"],
                      validated_candidates=len(state.get("validated_pool") or []))
        return {"registered": str(entry.program_path), "verified": winner, "status": "verified"}

    def finish(state: InductionState) -> dict[str, Any]:
        reason = state.get("reason") or ("" if state.get("status") == "verified" else budget_left(state))
        status = "verified" if state.get("registered") else "failed"
        log(state).event("finish", status=status, reason=reason or None, attempts=state.get("attempts", 0))
        return {"status": status, "reason": reason}

    return {"observe": observe, "induce": induce, "check": check, "validate": validate, "test": test,
            "register": register, "finish": finish}


def stop_reason(state: InductionState, inducer: Any, name: str, problem: str) -> str:
    """Why the last inducer gave nothing: its own word when it has one, else budget or space."""
    if problem:
        return f"{name} inducer failed: {problem}"
    own = getattr(inducer, "last_stop_message", "")  # the search says: budget spent, space exhausted, tables refused
    if own:
        return f"{name} inducer gave no candidate: {own}"
    if seconds_left(state) <= 1.0:
        return f"time budget spent ({state['config']['budget_seconds']:.0f} s) before {name} found another candidate"
    return f"{name} inducer has no more candidates"


def after_induce(state: InductionState) -> str:
    return "check" if state.get("pending") and state.get("status") != "failed" else "finish"


def next_attempt(state: InductionState) -> str:
    """After a candidate is done: test once something validated and nothing pending is worth
    comparing with it; stop on budget; else the next pending one, else ask again."""
    pool, pending = state.get("validated_pool") or [], state.get("pending")
    if pool and (not pending or not state.get("compare_batch") or budget_left(state)):
        return "test"
    if budget_left(state):
        return "finish"
    return "check" if pending else "induce"


def after_check(state: InductionState) -> str:
    current = state.get("current") or {}
    return "validate" if current.get("passed_check") else next_attempt(state)


def after_validate(state: InductionState) -> str:
    return next_attempt(state)


def after_test(state: InductionState) -> str:
    return "finish" if state.get("status") == "failed" else "register"


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
