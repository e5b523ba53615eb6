"""Every node and every route of the induction graph, with fake inducers, a fake sandbox and a
fake CoNN (a Python rule standing in for the compiled model): milliseconds, no tracr.

The end-to-end tests beside this file run the same graph with the real sandbox and compiles;
these pin down what each node reads, writes and decides.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from langgraph.runtime import Runtime

from autoconn.api import RunRequest, prepare_run
from autoconn.inducers.base import Candidate, Feedback, Proposal
from autoconn.pipeline import nodes, routes
from autoconn.pipeline.context import RunContext
from autoconn.pipeline.graph import run_graph
from autoconn.pipeline.state import InductionState, RunConfig, new_state
from autoconn.sandbox.protocol import Job, JobResult
from autoconn.task import Example, Task
from tests.conftest import REPO, reverse_rows, write_jsonl

LIBRARY = REPO / "tests" / "fixtures" / "library"  # read only: registrations here go to tmp libraries

RULES: dict[str, Callable[[list[Any]], list[Any]]] = {
    "reverse": lambda x: list(reversed(x)),
    "identity": lambda x: list(x),
    "short_reverse": lambda x: list(reversed(x)) if len(x) < 5 else list(x),  # wrong on the longest inputs only
}


class FakeConn:
    """Stands in for a loaded CoNN: runs the rule its 'program' names."""

    def __init__(self, rule: Callable[[list[Any]], list[Any]]) -> None:
        self.rule = rule

    def run(self, batch: list[list[Any]]) -> list[list[Any]]:
        return [self.rule(list(x)) for x in batch]


@dataclass
class FakeSandbox:
    """Compiles a 'program' whose source is a rule's name; any other source fails to compile.
    Returns real weights of the library's reverse entry, so the library accepts a registration."""

    jobs: list[Job] = field(default_factory=list)
    closed: bool = False

    def run(self, job: Job) -> JobResult:
        self.jobs.append(job)
        if job.source not in RULES:
            return JobResult.failure(job.job_id, "compile", f"unknown program {job.source!r}")
        meta = json.loads((LIBRARY / "reverse" / "conn.json").read_text())
        return JobResult(job.job_id, True, None, "", output_encoding="categorical", size=meta["size"],
                         spec=meta["spec"] | {"program": job.source}, weights_path=str(LIBRARY / "reverse" / "weights.npz"))

    def close(self) -> None:
        self.closed = True


def fake_weights(result: JobResult, task: Task, settings: Any, weights: str) -> tuple[JobResult, FakeConn | None]:
    return result, FakeConn(RULES[(result.spec or {})["program"]])


@dataclass
class FakeInducer:
    """Hands out scripted Proposals in order, and records what it was shown."""

    name: str
    script: list[Proposal]
    seen: list[tuple[Task, list[Example], list[Feedback]]] = field(default_factory=list)

    def propose(self, task: Task, induction: Sequence[Example], feedback: Sequence[Feedback], *,
                budget_seconds: float, limit: int) -> Proposal:
        self.seen.append((task, list(induction), list(feedback)))
        return self.script.pop(0) if self.script else Proposal(stop_message="out of ideas")


class Exploding:
    name = "llm"

    def propose(self, *args: Any, **kwargs: Any) -> Proposal:
        raise ConnectionError("endpoint down")


def proposal(*names: str, **extra: Any) -> Proposal:
    return Proposal(candidates=tuple(Candidate(n, "fake", n) for n in names), **extra)


@pytest.fixture
def config(tmp_path: Path) -> RunConfig:
    task = write_jsonl(tmp_path / "reverse.jsonl", reverse_rows(max_len=5))
    return prepare_run(RunRequest(task_path=str(task), library_dir=str(tmp_path / "lib"), runs_dir=str(tmp_path / "runs"),
                                  inducer="search", sandbox="process", budget_seconds=60, max_attempts=6)).config


def context_for(*inducers: Any, sandbox: FakeSandbox | None = None) -> RunContext:
    box = sandbox or FakeSandbox()
    return RunContext(inducers={i.name: i for i in inducers}, inducer_chain=[i.name for i in inducers],
                      open_sandbox=lambda: box, load_weights=fake_weights)


def step(state: InductionState, node: nodes.Node, context: RunContext) -> InductionState:
    """Applies a node's update the way the graph does (the reducer fields append)."""
    update = node(state, runtime=Runtime(context=context))
    merged: dict[str, Any] = dict(state)
    for key, value in update.items():
        merged[key] = merged.get(key, []) + value if key in ("feedback", "validated_pool", "inducer_log") else value
    return merged  # type: ignore[return-value]


def observed(config: RunConfig, context: RunContext) -> InductionState:
    from autoconn.pipeline.runlog import RunLog

    RunLog(config["runs_dir"], config["run_id"]).create()
    return step(new_state(config), nodes.observe, context)


# --- observe ------------------------------------------------------------------------------------

def test_observe_splits_the_task_into_three_disjoint_sets(config: RunConfig) -> None:
    state = observed(config, context_for(FakeInducer("search", [])))
    ids = [set(state[k]) for k in ("induction_ids", "validation_ids", "sealed_ids")]  # type: ignore[literal-required]
    assert all(ids) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(set().union(*ids)) == state["task_summary"]["examples"]
    assert state["task_summary"]["induction_max_length"] < state["task_summary"]["sealed_max_length"]
    assert state["active_inducer"] == "search" and state["settings"]["max_seq_len"] == 10


# --- induce -------------------------------------------------------------------------------------

def test_induce_shows_the_inducer_only_the_induction_set(config: RunConfig) -> None:
    inducer = FakeInducer("search", [proposal("reverse", "identity")])
    context = context_for(inducer)
    state = step(observed(config, context), nodes.induce, context)
    assert [c["source"] for c in state["pending"]] == ["reverse", "identity"]
    task, induction, _ = inducer.seen[0]
    held_out = {context.task(state).examples[i].inputs for i in state["validation_ids"] + state["sealed_ids"]}
    assert {e.inputs for e in task.examples} == {e.inputs for e in induction}
    assert not held_out & {e.inputs for e in task.examples}


def test_induce_falls_back_along_the_chain_and_records_why(config: RunConfig) -> None:
    search = FakeInducer("search", [proposal("reverse")])
    context = context_for(Exploding(), search)
    state = step(observed(config, context), nodes.induce, context)
    assert state["active_inducer"] == "search" and state["pending"][0]["source"] == "reverse"
    assert state["inducer_log"] == ["llm gave no candidate (ConnectionError: endpoint down); falling back to search"]
    assert state["inducer_usage"]["llm"]["rounds"] == 1 and state["inducer_usage"]["search"]["rounds"] == 1


def test_induce_fails_the_run_with_the_last_inducers_own_reason(config: RunConfig) -> None:
    context = context_for(FakeInducer("search", [Proposal(stop_message="the time budget ran out")]))
    state = step(observed(config, context), nodes.induce, context)
    assert state["status"] == "failed" and routes.after_induce(state) == "finish"
    assert state["reason"] == "search inducer gave no candidate: the time budget ran out"


def test_induce_keeps_rejections_usage_and_transcripts(config: RunConfig) -> None:
    lint = Feedback("bad program", "lint", "uses & on selectors")
    inducer = FakeInducer("search", [proposal("reverse", rejected=(lint,), usage={"calls": 2, "tokens": 100, "model": "m"},
                                              transcript=({"messages": ["hi"]},), compare_candidates=True)])
    context = context_for(inducer)
    state = step(observed(config, context), nodes.induce, context)
    assert state["feedback"] == [{"source": "bad program", "stage": "lint", "message": "uses & on selectors",
                                  "counterexamples": []}]
    assert state["inducer_usage"]["search"] == {"rounds": 1, "calls": 2, "tokens": 100, "model": "m"}
    assert state["compare_batch"] is True
    saved = Path(config["runs_dir"]) / config["run_id"] / "search" / "001.json"
    assert json.loads(saved.read_text()) == [{"messages": ["hi"]}]
    state = step(state | {"pending": []}, nodes.induce, context)  # a second call adds up, and sees the rejection
    assert state["inducer_usage"]["search"]["calls"] == 2 and state["inducer_usage"]["search"]["rounds"] == 2
    assert inducer.seen[1][2][0].stage == "lint"


def test_an_inducer_that_returns_a_list_is_a_failure_not_a_crash(config: RunConfig) -> None:
    class OldStyle:
        name = "search"

        def propose(self, *args: Any, **kwargs: Any) -> list[Candidate]:
            return [Candidate("reverse", "x")]

    context = context_for(OldStyle())
    state = step(observed(config, context), nodes.induce, context)
    assert state["status"] == "failed" and "not a Proposal" in state["reason"]


# --- check, validate, test ----------------------------------------------------------------------

def checked(config: RunConfig, *sources: str, sandbox: FakeSandbox | None = None) -> tuple[InductionState, RunContext]:
    context = context_for(FakeInducer("search", [proposal(*sources)]), sandbox=sandbox)
    state = step(step(observed(config, context), nodes.induce, context), nodes.check, context)
    return state, context


def test_check_sends_the_sandbox_only_induction_inputs(config: RunConfig) -> None:
    box = FakeSandbox()
    state, context = checked(config, "reverse", sandbox=box)
    task = context.task(state)
    assert [tuple(x) for x in box.jobs[0].inputs] == [task.examples[i].inputs for i in state["induction_ids"]]
    assert state["current"] and state["current"]["passed_check"] and state["attempts"] == 1
    assert routes.after_check(state) == "validate" and state["pending"] == []
    assert Path(state["current"]["weights"]).is_file()  # the run keeps its own copy of the weights


def test_check_turns_a_compile_failure_into_feedback(config: RunConfig) -> None:
    state, _ = checked(config, "nonsense", "reverse")
    assert state["current"] and not state["current"]["passed_check"]
    assert state["feedback"][-1]["stage"] == "compile" and "nonsense" in state["feedback"][-1]["message"]
    assert routes.after_check(state) == "check"  # the next pending candidate


def test_check_feeds_back_induction_counterexamples(config: RunConfig) -> None:
    state, _ = checked(config, "identity")
    feedback = state["feedback"][-1]
    assert feedback["stage"] == "check" and 0 < len(feedback["counterexamples"]) <= nodes.MAX_COUNTEREXAMPLES
    first = feedback["counterexamples"][0]
    assert first["expected"] == list(reversed(first["input"])) and first["got"] == first["input"]
    assert routes.after_check(state) == "induce"  # nothing pending: ask again


def test_validate_feeds_back_held_out_counterexamples(config: RunConfig) -> None:
    state, context = checked(config, "short_reverse")
    state = step(state, nodes.validate, context)
    assert state["feedback"][-1]["stage"] == "validate" and state["validated_pool"] == []
    assert all(len(c["input"]) >= 5 for c in state["feedback"][-1]["counterexamples"])
    assert nodes.revealed(state) == len(state["feedback"][-1]["counterexamples"])


def test_validate_then_test_reaches_a_verdict_on_the_sealed_set(config: RunConfig) -> None:
    state, context = checked(config, "reverse")
    state = step(state, nodes.validate, context)
    assert len(state["validated_pool"]) == 1 and routes.after_validate(state) == "test"
    state = step(state, nodes.test, context)
    record = state["tested"]["verified"]  # type: ignore[index]
    assert state["status"] == "registering" and routes.after_test(state) == "register"
    assert record["held_out"] and record["sealed"]["correct"] == record["sealed"]["total"] == len(state["sealed_ids"])


def test_a_sealed_failure_ends_the_run_and_reveals_nothing(config: RunConfig) -> None:
    state, context = checked(config, "reverse")
    state = step(state, nodes.validate, context)
    context.keep_conn(state["current"]["weights"], FakeConn(RULES["identity"]))  # type: ignore[index]
    before = list(state["feedback"])
    state = step(state, nodes.test, context)
    assert state["status"] == "failed" and "failed the sealed test" in state["reason"]
    assert routes.after_test(state) == "finish" and state["feedback"] == before


def test_test_picks_the_smallest_validated_candidate() -> None:
    pool: list[Any] = [{"attempt": 1, "size": {"layers": 3, "parameters": 10}},
                       {"attempt": 2, "size": {"layers": 2, "parameters": 50}},
                       {"attempt": 3, "size": {"layers": 2, "parameters": 50}}]
    assert nodes.smallest(pool)["attempt"] == 2


# --- routes -------------------------------------------------------------------------------------

def route_state(**fields: Any) -> InductionState:
    config: Any = {"max_attempts": 5, "budget_seconds": 100.0}
    return {"config": config, "attempts": 1, "elapsed": 1.0, "pending": [], "validated_pool": [], **fields}  # type: ignore[typeddict-item]


@pytest.mark.parametrize("fields, expected", [
    ({}, "induce"),  # nothing validated, nothing pending: ask again
    ({"pending": [{}]}, "check"),  # the next pending candidate
    ({"validated_pool": [{}]}, "test"),  # something validated, nothing to compare
    ({"validated_pool": [{}], "pending": [{}]}, "test"),  # ordered candidates: the first that validates wins
    ({"validated_pool": [{}], "pending": [{}], "compare_batch": True}, "check"),  # samples: validate the whole batch
    ({"validated_pool": [{}], "pending": [{}], "compare_batch": True, "attempts": 5}, "test"),  # unless the budget is spent
    ({"attempts": 5}, "finish"),
    ({"elapsed": 100.0, "pending": [{}]}, "finish"),
])
def test_next_attempt(fields: dict[str, Any], expected: str) -> None:
    assert routes.next_attempt(route_state(**fields)) == expected


def test_after_induce_and_after_test() -> None:
    assert routes.after_induce(route_state(pending=[{}])) == "check"
    assert routes.after_induce(route_state(pending=[{}], status="failed")) == "finish"
    assert routes.after_test(route_state(status="registering")) == "register"
    assert routes.after_test(route_state(status="failed")) == "finish"


# --- the whole graph with fakes -----------------------------------------------------------------

def test_the_graph_repairs_registers_and_finishes(config: RunConfig) -> None:
    """identity fails the induction check; its counterexamples reach the inducer; reverse verifies
    and is registered; the run's summary says so, checkpointed in SQLite."""
    inducer = FakeInducer("search", [proposal("identity"), proposal("reverse")])
    box = FakeSandbox()
    outcome = run_graph(context_for(inducer, sandbox=box), config)
    summary = outcome.summary()
    assert summary["status"] == "verified" and summary["attempts"] == 2, summary
    assert inducer.seen[1][2][0].counterexamples, "the second call saw the first candidate's counterexamples"
    assert Path(summary["program"]).is_file() and summary["validation_revealed"] == 0
    assert summary["held_out"] and summary["verified_length"] == 5
    assert box.closed
    shutil.rmtree(config["runs_dir"])
