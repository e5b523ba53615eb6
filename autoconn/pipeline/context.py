"""What a run's nodes use but the checkpoint must not hold: the inducers, the sandbox, the task
re-read from its file, the oracle's draws and the candidate's loaded CoNN.

LangGraph hands it to every node as ``runtime.context`` (the graph's ``context_schema``), so a
node is a plain module-level function of (state, context) and a test can build one with fake
inducers and a fake sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from autoconn.conn.compile import CompileSettings
from autoconn.conn.runtime import ConnRuntime, ConnSpec
from autoconn.inducers.base import Inducer
from autoconn.oracle import Draw, OracleDraw, OracleSpec, check_oracle, make_draw
from autoconn.pipeline.state import InductionState
from autoconn.sandbox.protocol import Job, JobResult
from autoconn.task import Task, TaskError, load_task

EventSink = Callable[[str, dict[str, Any]], None]
# (result, task, settings, weights copy) -> (result, runtime or None): the host's checks of returned weights
WeightsLoader = Callable[[JobResult, Task, CompileSettings, str], tuple[JobResult, Any | None]]


class Sandbox(Protocol):
    """What the nodes need of a sandbox (autoconn.sandbox.open_sandbox gives the real ones)."""

    def run(self, job: Job) -> JobResult: ...

    def close(self) -> None: ...


class TaskChanged(TaskError):
    """The task file changed since the run started: resuming would mix two tasks."""


def ignore_event(kind: str, data: dict[str, Any]) -> None:
    """The default event sink: a run without a progress display."""


def host_weights(result: JobResult, task: Task, settings: CompileSettings, weights: str) -> tuple[JobResult, Any | None]:
    from autoconn.checking import host_runtime

    return host_runtime(result, task, settings, weights=weights)


@dataclass
class RunContext:
    """Live objects for one run (or one resume); built by autoconn.api, never checkpointed."""

    inducers: dict[str, Inducer]
    inducer_chain: list[str]  # the order `auto` tries inducers in; one name otherwise
    open_sandbox: Callable[[], Sandbox]
    on_event: EventSink = ignore_event
    owns_sandbox: bool = True  # False when a caller (e.g. bench) shares one sandbox across runs
    load_weights: WeightsLoader = host_weights  # tests may load a fake CoNN; runs always use the host's checks
    _sandbox: Sandbox | None = None
    _task: Task | None = None
    _task_key: tuple[str, str] = ("", "")
    _draws: dict[tuple[str, Draw], OracleDraw] = field(default_factory=dict)
    _conn: tuple[str, Any | None] = ("", None)

    def sandbox(self) -> Sandbox:
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

    def oracle_draw(self, state: InductionState, draw: Draw) -> OracleDraw | None:
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

    def conn(self, weights: str, spec: dict[str, Any]) -> Any:
        """The candidate's CoNN loaded from its weights (kept while the same candidate is scored;
        after a resume, loaded again through the same checks)."""
        loaded = self._conn[1]
        if self._conn[0] != weights or loaded is None:
            loaded = ConnRuntime.load(weights, ConnSpec.from_json(spec))
            self._conn = (weights, loaded)
        return loaded

    def keep_conn(self, weights: str, conn: Any) -> None:
        self._conn = (weights, conn)
