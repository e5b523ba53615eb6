"""The graph's state: plain data only (text, numbers, paths, hashes), so SQLite can checkpoint
it and an interrupted run resumes. Compiled models, sandboxes and clients live in
:class:`Resources`, never here."""

from __future__ import annotations

from typing import Any, NotRequired, Optional, TypedDict


class RunConfig(TypedDict):
    """What the user asked for; fixed for the life of a run (a resume reuses it)."""

    run_id: str
    task_path: str
    name: str
    description: Optional[str]
    max_seq_len: Optional[int]
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
    fusion: NotRequired[dict[str, Any]]  # FusionOverrides.to_json(): the user's trigger etc. (runs before it had none)
    oracle: NotRequired[Optional[str]]  # FILE.py:FUNC, the user's trusted rule (see autoconn.oracle)
    sealed_set: NotRequired[bool]  # False: no sealed set from the file (--no-sealed, or a small file with an oracle)


class InductionState(TypedDict, total=False):
    config: RunConfig
    task_sha256: str
    task_summary: dict[str, Any]
    settings: dict[str, Any]  # CompileSettings.to_json()
    induction_ids: list[int]  # indices into the task's examples
    validation_ids: list[int]  # held out; counterexamples may be fed back
    sealed_ids: list[int]  # held out and never revealed: only they (and the oracle) give the verdict
    active_inducer: str  # the inducer in use now (auto may move from llm to search)
    pending: list[dict[str, Any]]  # Candidate.to_json() waiting to be checked
    current: Optional[dict[str, Any]]  # the candidate being checked and its sandbox result
    attempts: int  # candidates checked so far
    feedback: list[dict[str, Any]]  # Feedback as JSON, oldest first
    elapsed: float  # seconds spent in nodes so far, across resumes
    status: str  # running | registering (verdict reached, entry being written) | verified | failed
    reason: str  # why a failed run stopped
    best: str  # the smallest validated candidate so far, in words (for progress)
    validated_pool: list[dict[str, Any]]  # candidates that passed validation (the smallest is tested)
    tested: Optional[dict[str, Any]]  # the candidate the sealed test judged, with its `verified` record
    verified: Optional[dict[str, Any]]  # the registered candidate, its figures
    compare_batch: bool  # verify every pending candidate of this batch before registering (LLM samples)
    inducer_usage: dict[str, dict[str, Any]]  # per inducer: rounds, and the LLM's calls and tokens
    registered: Optional[str]  # path of program.py in the library
    inducer_log: list[str]  # inducer switches and notes a person should see


def new_state(config: RunConfig) -> InductionState:
    return InductionState(config=config, attempts=0, feedback=[], pending=[], elapsed=0.0,
                          status="running", reason="", current=None, verified=None, registered=None,
                          inducer_log=[], validated_pool=[], tested=None, compare_batch=False, inducer_usage={})
