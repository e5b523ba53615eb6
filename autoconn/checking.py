"""Check a candidate program against examples: sandboxed compile, then verification of the
compiled model's outputs, then (when asked) the library entry's metadata.

Shared by `autoconn check` and the induction pipeline so both judge candidates alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autoconn import __version__
from autoconn.conn.artifact import Library, LibraryEntry, LibraryError
from autoconn.conn.compile import CompileSettings
from autoconn.conn.verify import Verification, score_runtime
from autoconn.faults import kill_point
from autoconn.fusion.metadata import FusionOverrides, FusionSpec, build_spec
from autoconn.task import Example, Task


@dataclass(frozen=True)
class CheckOutcome:
    """The sandbox's answer for one candidate and, when it compiled, how its weights scored
    here on the host (the sandbox's own account of its outputs is never used)."""

    result: Any  # autoconn.sandbox.protocol.JobResult
    verification: Verification | None
    oracle: Verification | None = None
    problem: str = ""  # the program compiled but cannot be this task's CoNN (output kind, weights)

    @property
    def passed(self) -> bool:
        return (bool(self.result.ok) and not self.problem and self.verification is not None and self.verification.passed
                and (self.oracle is None or self.oracle.passed))

    def reason(self) -> str:
        """One short paragraph: why the candidate failed (empty when it passed)."""
        if not self.result.ok:
            return f"{self.result.stage}: {self.result.error}"
        if self.problem:
            return self.problem
        for what, v in (("examples", self.verification), ("oracle inputs", self.oracle)):
            if v is not None and not v.passed:
                return f"wrong on {v.total - v.correct} of {v.total} {what}"
        return ""




def make_job(source: str, task: Task, settings: CompileSettings, examples: Sequence[Example],
             *, want_weights: bool = True, timeout_seconds: float = 180.0) -> Any:
    from autoconn.sandbox.protocol import Job

    return Job(
        job_id=uuid.uuid4().hex[:12],
        source=source,
        vocab=list(task.input_vocab),
        settings=settings.to_json(),
        inputs=[list(e.inputs) for e in examples],
        want_weights=want_weights,
        timeout_seconds=timeout_seconds,
    )


def output_kind_problem(task: Task, result: Any) -> str:
    """A numerical task needs a numerical program and vice versa; say so precisely."""
    encoding = getattr(result, "output_encoding", None)
    if encoding and encoding != task.output_kind:
        return (f"the program's output is {encoding} but the task's outputs are {task.output_kind}: "
                f"wrap the final SOp in rasp.{task.output_kind}(...) or change how it is computed")
    return ""


def check_source(sandbox: Any, source: str, task: Task, settings: CompileSettings,
                 examples: Sequence[Example], *, oracle: Sequence[Example] = ()) -> CheckOutcome:
    """Compiles the candidate in the sandbox, then scores the weights it returned on `examples`
    (and the `oracle` inputs) here, with the host's runtime (autoconn.conn.host_verdict). The
    worker is sent none of them: tracr compiles from the vocab alone, and code that never saw the
    verdict's inputs cannot be fitted to them."""
    result = sandbox.run(make_job(source, task, settings, []))
    if not result.ok:
        return CheckOutcome(result, None)
    if problem := output_kind_problem(task, result):
        return CheckOutcome(result, None, problem=problem)
    result, runtime = host_runtime(result, task, settings)
    if runtime is None:
        return CheckOutcome(result, None)
    scored = score_runtime(runtime, examples, task.output_kind)
    by_oracle = score_runtime(runtime, oracle, task.output_kind) if oracle else None
    return CheckOutcome(result, scored, by_oracle)


def host_runtime(result: Any, task: Task, settings: CompileSettings, weights: str | None = None) -> tuple[Any, Any]:
    """(result, runtime): the returned weights (or their copy at `weights`) loaded here once their
    spec matches what the host asked for and the arrays match the spec; otherwise the result turns
    into a failure at stage "weights" and the runtime is None."""
    from autoconn.conn.host_verdict import expected_spec, load_checked
    from autoconn.conn.weights_check import WeightsError
    from autoconn.sandbox.protocol import JobResult

    try:
        runtime = load_checked(weights or result.weights_path, result.spec,
                               expect=expected_spec(task.input_vocab, settings, task.output_kind),
                               residual_width=(result.size or {}).get("residual_width"))
    except WeightsError as err:
        failed = JobResult.failure(result.job_id, "weights", f"the returned weights were refused: {err}",
                                   seconds=result.seconds, size=result.size, output_encoding=result.output_encoding)
        failed.backend = result.backend
        return failed, None
    return result, runtime


MAX_GRAPH_BYTES = 1_000_000  # graph facts of any real program are a few kB


def display_graph(result: Any) -> dict[str, Any] | None:
    """The graph facts the worker reported, kept for `autoconn review` only when they are a small
    JSON object (they come from a process that ran candidate code: display, never a verdict)."""
    import json

    graph = getattr(result, "graph", None)
    if not isinstance(graph, dict):
        return None
    try:
        return graph if len(json.dumps(graph)) <= MAX_GRAPH_BYTES else None
    except (TypeError, ValueError):
        return None


def display_path(path: str) -> str:
    """A task path relative to the working directory when it lies below it (readable, portable)."""
    import os

    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def conn_metadata(task: Task, settings: CompileSettings, size: dict[str, Any], spec: dict[str, Any],
                  verified: dict[str, Any], provenance: dict[str, Any], *,
                  fusion: dict[str, Any] | None = None) -> dict[str, Any]:
    """conn.json content (DESIGN.md): what a reviewer and the fusion step need to know;
    `verified` is the record autoconn.verdict.make_record built.

    `fusion` is the validated FusionSpec.to_json() (see fusion_for_task); without it the
    default spec for the task's own name is stored."""
    if fusion is None:
        fusion = fusion_for_task(task.name, task, output_values=spec.get("output_decoding")).to_json()
    return {
        "description": task.description,
        "vocab": list(task.input_vocab),
        "output_kind": task.output_kind,
        "output_shape": task.output_shape,
        "output_vocab": list(task.output_vocab),
        "max_seq_len": settings.max_seq_len,
        "compiler": settings.to_json(),
        "size": size,
        "spec": spec,
        "verified": verified,
        "provenance": {"autoconn_version": __version__, "tracr": "tracr-pypi 1.0.0", **provenance},
        "task": {"name": task.name, "path": display_path(task.path), "sha256": task.sha256, "examples": len(task.examples)},
        "fusion": fusion,
    }


def fusion_for_task(name: str, task: Task, overrides: Mapping[str, Any] | None = None, *,
                    output_values: Sequence[Any] | None = None) -> FusionSpec:
    """The fusion spec a CoNN registered as `name` gets: defaults for the task's vocab and output
    (`output_values`: the compiled model's output decoding, once known), then the user's
    overrides; raises FusionSpecError when they cannot work."""
    values = list(output_values) if output_values else list(task.output_vocab)
    return build_spec(name, list(task.input_vocab), task.output_shape, FusionOverrides.from_json(overrides),
                      output_kind=task.output_kind, output_values=values)


def register_checked(library_dir: str, name: str, source: str, task: Task, settings: CompileSettings, *,
                     size: Mapping[str, Any], spec: Mapping[str, Any], weights: str, verified: Mapping[str, Any],
                     provenance: Mapping[str, Any], fusion: Mapping[str, Any] | None = None, force: bool = False,
                     run_id: str | None = None, graph: dict[str, Any] | None = None,
                     induction: dict[str, Any] | None = None) -> LibraryEntry:
    """Writes a checked CoNN to the library in one transaction (program, conn.json, weights, graph):
    the pipeline's register node and `check --register` (autoconn.api) both come here."""
    fusion_spec = fusion_for_task(name, task, fusion, output_values=spec.get("output_decoding")).to_json()
    meta = conn_metadata(task, settings, dict(size), dict(spec), dict(verified), dict(provenance), fusion=fusion_spec)
    if induction is not None:
        meta["induction"] = induction
    kill_point("register:before-write")
    try:
        return Library(library_dir).write(name, source, meta, weights_file=weights, force=force, run_id=run_id, graph=graph)
    except LibraryError as error:
        if run_id is None:
            raise
        # the verdict stays checkpointed: a resume can still register it
        raise LibraryError(f"{error}\n  the verified CoNN is kept with run {run_id}: `autoconn induce --resume {run_id}` "
                           "registers it once this is fixed (add --force to replace the other entry)") from None
