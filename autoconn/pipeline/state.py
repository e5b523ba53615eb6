"""The graph's state: plain data only (text, numbers, paths, hashes), so SQLite can checkpoint
it and an interrupted run resumes. Compiled models, sandboxes and clients live in the run's
:class:`~autoconn.pipeline.context.RunContext`, never here.

Lists that only grow (feedback, the validated pool, notes) carry a reducer: a node returns the
items it adds, and LangGraph appends them, so no node can drop what an earlier one recorded.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, NotRequired, TypedDict


class RunConfig(TypedDict):
    """What the user asked for; fixed for the life of a run (a resume reads it from the checkpoint)."""

    run_id: str
    task_path: str
    name: str
    description: str | None
    max_seq_len: int | None
    library_dir: str
    runs_dir: str
    inducer: str  # auto | search | llm | files
    candidates: list[str]  # program files, for the files inducer
    sandbox: str  # auto | docker | process
    budget_seconds: float
    max_attempts: int
    batch_size: int  # candidates asked of an inducer per call
    llm: NotRequired[dict[str, Any]]  # LLM options from flags: model, base_url, samples, temperature (never the key)
    force: bool
    fusion: NotRequired[dict[str, Any]]  # FusionOverrides.to_json(): the user's trigger etc.
    oracle: NotRequired[str | None]  # FILE.py:FUNC, the user's trusted rule (see autoconn.oracle)
    sealed_set: NotRequired[bool]  # False: no sealed set from the file (--no-sealed, or a small file with an oracle)


class CandidateRecord(TypedDict):
    """Candidate.to_json(): a program an inducer proposed."""

    source: str
    origin: str
    summary: str


class CounterexampleRecord(TypedDict):
    input: list[Any]
    expected: list[Any]
    got: list[Any]


class FeedbackRecord(TypedDict):
    """Why a candidate was rejected; goes back to the inducers (never with sealed inputs)."""

    source: str
    stage: str  # lint | screen | exec | compile | run | weights | check | validate | oracle | ...
    message: str
    counterexamples: list[CounterexampleRecord]


class CheckedCandidate(TypedDict, total=False):
    """One candidate after the sandbox and the host's scoring, with the figures each step added."""

    candidate: CandidateRecord
    attempt: int
    source_path: str
    ok: bool
    stage: str | None
    error: str
    size: dict[str, Any] | None
    spec: dict[str, Any] | None
    seconds: float
    output_encoding: str | None
    weights: str  # the run's own copy of the returned weights
    graph: dict[str, Any] | None  # display-only graph facts (size-bounded)
    passed_check: bool
    induction: dict[str, Any]  # Verification.to_json() per set
    validation: dict[str, Any]
    oracle_validation: dict[str, Any]
    oracle_exhaustive: list[dict[str, int]]
    verified: dict[str, Any]  # the verdict record (autoconn.verdict.make_record), once tested


class InductionState(TypedDict, total=False):
    config: RunConfig
    task_sha256: str
    task_summary: dict[str, Any]
    settings: dict[str, Any]  # CompileSettings.to_json()
    induction_ids: list[int]  # indices into the task's examples
    validation_ids: list[int]  # held out; counterexamples may be fed back
    sealed_ids: list[int]  # held out and never revealed: only they (and the oracle) give the verdict
    active_inducer: str  # the inducer in use now (auto may move from llm to search)
    pending: list[CandidateRecord]  # waiting to be checked
    current: CheckedCandidate | None  # the candidate being checked
    attempts: int  # candidates checked so far
    feedback: Annotated[list[FeedbackRecord], operator.add]  # oldest first
    elapsed: float  # seconds spent in nodes so far, across resumes
    status: str  # running | registering (verdict reached, entry being written) | verified | failed
    reason: str  # why a failed run stopped
    best: str  # the smallest validated candidate so far, in words (for progress)
    validated_pool: Annotated[list[CheckedCandidate], operator.add]  # passed validation (the smallest is tested)
    tested: CheckedCandidate | None  # the candidate the sealed test judged, with its `verified` record
    verified: CheckedCandidate | None  # the registered candidate
    compare_batch: bool  # verify every pending candidate of this batch before testing (LLM samples)
    inducer_usage: dict[str, dict[str, Any]]  # per inducer: rounds, and the LLM's calls and tokens
    registered: str | None  # path of program.py in the library
    inducer_log: Annotated[list[str], operator.add]  # inducer switches and notes a person should see


def new_state(config: RunConfig) -> InductionState:
    return InductionState(config=config, attempts=0, feedback=[], pending=[], elapsed=0.0,
                          status="running", reason="", current=None, verified=None, registered=None,
                          inducer_log=[], validated_pool=[], tested=None, compare_batch=False, inducer_usage={})
