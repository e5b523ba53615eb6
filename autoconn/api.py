"""The one way to do each of AutoCoNN's jobs from Python: start or resume an induction run, check
a hand-written program, register a checked CoNN, re-verify an entry against an oracle.

The command line and `autoconn bench` only parse, call these and print. Every function checks
its request before any work and raises an error whose message says what to do
(:class:`RequestError`, TaskError, OracleError, LibraryError, FusionSpecError, InducerUnavailable);
the CLI turns each into one line and exit 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoconn import settings
from autoconn.checking import (
    CheckOutcome,
    check_source,
    display_graph,
    fusion_for_task,
    register_checked,
)
from autoconn.conn.artifact import Library, check_name
from autoconn.conn.compile import default_settings
from autoconn.conn.verify import by_length, score_runtime
from autoconn.fusion.metadata import FusionSpecError
from autoconn.inducers import make_inducers
from autoconn.oracle import OracleDraw, OracleSpec, check_oracle, load_rule, make_draw
from autoconn.pipeline.context import EventSink, RunContext, Sandbox, ignore_event
from autoconn.pipeline.graph import RunOutcome, run_graph, saved_state
from autoconn.pipeline.runlog import new_run_id
from autoconn.pipeline.state import RunConfig
from autoconn.task import MIN_THREE_SETS, Limits, Task, load_task, split_task
from autoconn.verdict import make_record, oracle_block, with_oracle

CANDIDATES_PER_CALL = 5  # candidates asked of an inducer per call (the LLM asks for its --samples of them)
SANDBOX_CHOICES = ("auto", "docker", "process")


class RequestError(ValueError):
    """A request that cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class RunRequest:
    """Everything a user can ask of one induction run (the flags of `autoconn induce`)."""

    task_path: str
    name: str | None = None
    description: str | None = None
    max_seq_len: int | None = None
    library_dir: str = "generated_conns"
    runs_dir: str = "runs"
    inducer: str = "auto"
    candidates: tuple[str, ...] = ()  # program files, for the files inducer
    sandbox: str = "auto"
    budget_seconds: float = 300.0
    max_attempts: int = 40
    force: bool = False
    oracle: str | None = None  # FILE.py:FUNC
    sealed: bool = True  # False: --no-sealed
    limits: Limits = field(default_factory=Limits)
    fusion: Mapping[str, Any] = field(default_factory=dict)  # FusionOverrides.to_json()
    llm: Mapping[str, Any] = field(default_factory=dict)  # model, base_url, samples, temperature, max_tokens


@dataclass(frozen=True)
class PreparedRun:
    """A checked request: the task read, the oracle checked against it, the config a run records."""

    task: Task
    config: RunConfig


def check_sandbox_kind(kind: str) -> None:
    if kind not in SANDBOX_CHOICES:
        raise RequestError(f"--sandbox {kind!r}: choose {', '.join(SANDBOX_CHOICES[:-1])} or {SANDBOX_CHOICES[-1]}")


def prepare_run(request: RunRequest, *, check_oracle_with: Callable[[OracleSpec, Task], Any] = check_oracle) -> PreparedRun:
    """Every check that can fail before any search: flags, the task file and its three sets, the
    name, the library, the oracle, the fusion overrides, the program files."""
    check_sandbox_kind(request.sandbox)
    settings.load()  # a bad AUTOCONN_* / OPENAI_* variable is refused before any work, not when the sandbox opens
    if not math.isfinite(request.budget_seconds) or request.budget_seconds <= 0:
        raise RequestError(f"--budget {request.budget_seconds}: give a finite number of seconds above 0")
    if request.max_attempts < 1:
        raise RequestError("--max-attempts must be at least 1")
    task = load_task(request.task_path, name=request.name, description=request.description,
                     max_seq_len=request.max_seq_len, limits=request.limits)
    check_name(task.name)
    oracle = OracleSpec.parse(request.oracle) if request.oracle else None
    if oracle is not None:
        check_oracle_with(oracle, task)
    sealed_set = request.sealed and (oracle is None or len(task.examples) >= MIN_THREE_SETS)
    split_task(task, sealed=sealed_set)  # a file too small for its sets is refused now
    check_registration(Registration(task.name, str(request.library_dir), request.force, request.fusion), task)
    for path in request.candidates:
        if not Path(path).is_file():
            raise RequestError(f"--candidate {path}: no such file")
    config = RunConfig(run_id=new_run_id(task.name), task_path=str(request.task_path), name=task.name,
                       description=request.description, max_seq_len=request.max_seq_len,
                       library_dir=str(request.library_dir), runs_dir=str(request.runs_dir), inducer=request.inducer,
                       candidates=[str(p) for p in request.candidates], sandbox=request.sandbox,
                       budget_seconds=float(request.budget_seconds), max_attempts=request.max_attempts,
                       batch_size=CANDIDATES_PER_CALL, force=request.force, fusion=dict(request.fusion),
                       llm=llm_options(request.llm, request.library_dir),
                       oracle=str(oracle) if oracle else None, sealed_set=sealed_set)
    return PreparedRun(task, config)


def llm_options(llm: Mapping[str, Any], library_dir: str) -> dict[str, Any]:
    """The LLM flags a run records (never a key): the ones given, and where its demonstrations come
    from (the run's own library unless `library_dir` is given, as bench does with the user's)."""
    return {"library_dir": str(library_dir)} | given_llm_flags(llm)


def given_llm_flags(llm: Mapping[str, Any]) -> dict[str, Any]:
    """The LLM flags the user gave (None: not given); a key is never recorded."""
    return {k: v for k, v in llm.items() if v is not None and k != "api_key"}


def run_context(config: RunConfig, *, on_event: EventSink | None = None, sandbox: Sandbox | None = None) -> RunContext:
    """The live objects of a run: its inducers and a sandbox (a shared one is never closed by the run)."""
    from autoconn.sandbox import open_sandbox

    inducers, chain = make_inducers(config["inducer"], config["candidates"], config.get("llm"))
    if sandbox is not None:
        shared = sandbox
        return RunContext(inducers=inducers, inducer_chain=chain, open_sandbox=lambda: shared,
                          on_event=on_event or ignore_event, owns_sandbox=False)
    kind = config["sandbox"]
    return RunContext(inducers=inducers, inducer_chain=chain, open_sandbox=lambda: open_sandbox(kind),
                      on_event=on_event or ignore_event)


def start_run(request: RunRequest | PreparedRun, *, on_event: EventSink | None = None,
              sandbox: Sandbox | None = None) -> RunOutcome:
    """Checks the request (unless already prepared), then runs the pipeline to a verdict:
    registered, or failed with the reason."""
    prepared = request if isinstance(request, PreparedRun) else prepare_run(request)
    context = run_context(prepared.config, on_event=on_event, sandbox=sandbox)
    return run_graph(context, prepared.config)


def resume_run(run_id: str, *, runs_dir: str = "runs", force: bool = False, llm: Mapping[str, Any] | None = None,
               on_event: EventSink | None = None, sandbox: Sandbox | None = None) -> RunOutcome:
    """Continues an interrupted run from its last checkpoint, with the config it started with (the
    checkpoint is the only source); `force` may replace a same-name entry, `llm` may point the LLM
    inducer elsewhere (a new endpoint or model). A finished run is reported again."""
    state, following = saved_state(runs_dir, run_id)
    config = state["config"]
    if not following:
        from autoconn.pipeline.runlog import RunLog

        return RunOutcome(run_id, state, 0.0, RunLog(runs_dir, run_id).log_path)
    changes: dict[str, Any] = {"runs_dir": str(runs_dir)}
    if force:
        changes["force"] = True
    if llm:
        changes["llm"] = dict(config.get("llm") or {}) | given_llm_flags(llm)
    config = RunConfig(**(dict(config) | changes))  # type: ignore[typeddict-item]
    Library(config["library_dir"]).check_writable()
    context = run_context(config, on_event=on_event, sandbox=sandbox)
    return run_graph(context, config, resume=True)


@dataclass(frozen=True)
class Registration:
    """Where and how `check_program` registers a program that verifies."""

    name: str
    library_dir: str = "generated_conns"
    force: bool = False
    fusion: Mapping[str, Any] = field(default_factory=dict)


def check_program(program: str | Path, task_path: str | Path, *, oracle: str | None = None,
                  max_seq_len: int | None = None, sandbox: str = "auto", limits: Limits | None = None,
                  register: Registration | None = None,
                  on_start: Callable[[Task], None] = lambda task: None) -> dict[str, Any]:
    """Compiles a hand-written program in the sandbox and scores its weights here on every example
    of the task (and the oracle's inputs); registers it when it verifies and `register` is given.
    Returns the `check --json` object. Nothing was held out from the program's author, so the
    record says so; the oracle's draw was held out from everyone."""
    from autoconn.sandbox import open_sandbox

    check_sandbox_kind(sandbox)
    task = load_task(task_path, max_seq_len=max_seq_len, limits=limits or Limits())
    source = read_program(Path(program))
    if register is not None:
        check_registration(register, task)
    draw: OracleDraw | None = None
    if oracle:
        spec = OracleSpec.parse(oracle)
        check_oracle(spec, task)
        draw = make_draw(load_rule(spec), spec, task.input_vocab, task.output_kind, task.max_seq_len, "sealed", task.sha256)
    settings = default_settings(task.max_seq_len)
    on_start(task)
    with open_sandbox(sandbox) as box:  # open until registered: the weights live in its exchange dir
        outcome = check_source(box, source, task, settings, task.examples, oracle=draw.examples if draw else ())
        record = checked_record(task, outcome, draw, oracle)
        result = outcome.result
        summary: dict[str, Any] = {
            "status": "verified" if outcome.passed else "failed",
            "program": str(program), "task": task.path, "sandbox": box.backend, "stage": result.stage,
            "error": result.error or outcome.problem, "size": result.size,
            "verification": outcome.verification.to_json(examples="task") if outcome.verification else None,
            "oracle": outcome.oracle.to_json(examples="oracle") if outcome.oracle else None,
            "verified": record, "verified_length": record["max_length"] if record and outcome.passed else None,
            "seconds": round(result.seconds, 3),
        }
        if outcome.passed and register is not None and record is not None:
            entry = register_checked(register.library_dir, register.name, source, task, settings, size=result.size or {},
                                     spec=result.spec or {}, weights=result.weights_path, verified=record,
                                     provenance={"inducer": "hand-written",
                                                 "checked_with": f"autoconn check ({box.backend} sandbox)"},
                                     fusion=register.fusion, force=register.force, graph=display_graph(result))
            summary["registered"] = str(entry.program_path)
    return summary


def read_program(program: Path) -> str:
    if not program.is_file():
        raise RequestError(f"{program}: no such program file")
    try:
        return program.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RequestError(f"{program}: not UTF-8 text") from None


def check_registration(register: Registration, task: Task) -> None:
    """Refuses a registration that cannot succeed, before anything is compiled."""
    check_name(register.name)
    library = Library(register.library_dir)
    library.check_writable()
    if library.exists(register.name) and not register.force:
        raise RequestError(f"a CoNN named {register.name!r} already exists in {register.library_dir}; "
                           "pick another name (--name, or check --register NAME) or pass --force")
    try:
        fusion_for_task(register.name, task, dict(register.fusion))
    except FusionSpecError as error:
        raise FusionSpecError(f"fusion: {error}") from None


def checked_record(task: Task, outcome: CheckOutcome, draw: OracleDraw | None, oracle: str | None) -> dict[str, Any] | None:
    """The verified block of a hand-checked program: every example (not held out from its author),
    plus the oracle's sealed draw (held out from everyone) when one was given."""
    if outcome.verification is None:
        return None
    oracle_json = None
    if draw is not None and outcome.oracle is not None:
        oracle_json = oracle_block(str(oracle), by_length(draw.examples, outcome.oracle), draw.exhaustive_lengths,
                                   draw.outside_domain, task.max_seq_len)
    return make_record(how="oracle" if oracle_json else "examples", held_out=oracle_json is not None,
                       compiled_max_seq_len=task.max_seq_len, sealed=None, validation=outcome.verification,
                       validation_revealed=0, oracle=oracle_json)


@dataclass(frozen=True)
class Reverification:
    """What `verify` found: whether the oracle agreed everywhere, the new record, the first failures."""

    name: str
    passed: bool
    verified: dict[str, Any]
    failures: list[dict[str, Any]]  # the shortest first, at most five
    total: int  # oracle inputs run
    correct: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "verified": self.verified, "failures": self.failures}


def verify(name: str, oracle: str, *, library_dir: str = "generated_conns",
           on_start: Callable[[int], None] = lambda compiled: None) -> Reverification:
    """Re-verifies a registered CoNN from its stored weights (no recompiling) against the oracle at
    every compiled length, and records how far it is now proven (lower when the oracle finds a
    wrong answer, higher when it covers lengths the examples did not)."""
    library = Library(library_dir)
    entry = library.get(name)
    spec = OracleSpec.parse(oracle)
    meta = entry.meta
    task_meta = meta.get("task") or {}
    task_path = task_meta.get("path")
    if task_path and Path(task_path).is_file():
        task = load_task(task_path, max_seq_len=int(meta["max_seq_len"]))
        if task.sha256 == task_meta.get("sha256"):
            check_oracle(spec, task)  # the rule must agree with the examples the CoNN came from
    rule = load_rule(spec)
    compiled = int(meta["max_seq_len"])
    on_start(compiled)
    draw = make_draw(rule, spec, entry.spec.vocab, str(meta.get("output_kind")), compiled, "sealed",
                     str(task_meta.get("sha256") or meta.get("source_sha256")))
    scored = score_runtime(entry.runtime(), draw.examples, meta.get("output_kind"))  # type: ignore[arg-type]
    lengths = oracle_block(str(spec), by_length(draw.examples, scored), draw.exhaustive_lengths, draw.outside_domain, compiled)
    record = with_oracle(meta.get("verified"), lengths, compiled, legacy=meta.get("verification"))
    library.update_meta(name, {"verified": record})
    failures = [f.to_json() for f in sorted(scored.failures, key=lambda f: len(f.inputs))[:5]]
    return Reverification(name, scored.passed, record, failures, scored.total, scored.correct)


__all__ = ["CANDIDATES_PER_CALL", "PreparedRun", "Registration", "RequestError", "Reverification", "RunOutcome",
           "RunRequest", "check_program", "prepare_run", "register_checked", "resume_run", "start_run", "verify"]
