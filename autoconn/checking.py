"""Check a candidate program against examples: sandboxed compile, then verification of the
compiled model's outputs, then (when asked) the library entry's metadata.

Shared by `autoconn check` and the induction pipeline so both judge candidates alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from autoconn import __version__
from autoconn.conn.compile import CompileSettings
from autoconn.conn.verify import Verification
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


COMPILE_INPUTS = 8  # examples the worker runs after compiling (a smoke test; the verdict is the host's)


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
    """Compiles the candidate in the sandbox, then scores the returned weights on `examples`
    (and `oracle` inputs) here, with the host's runtime. The worker sees only a few examples."""
    from autoconn.conn.runtime import ConnRuntime, ConnSpec
    from autoconn.conn.verify import score_runtime

    shown = sorted(examples, key=lambda e: len(e.inputs))[:COMPILE_INPUTS]
    result = sandbox.run(make_job(source, task, settings, shown))
    if not result.ok:
        return CheckOutcome(result, None)
    if not result.weights_path or not result.spec:
        return CheckOutcome(result, None, problem="the sandbox returned no weights")
    if problem := output_kind_problem(task, result):
        return CheckOutcome(result, None, problem=problem)
    try:
        runtime = ConnRuntime.load(result.weights_path, ConnSpec.from_json(result.spec))
    except (ValueError, KeyError, OSError) as error:
        return CheckOutcome(result, None, problem=f"the returned weights cannot be loaded: {error}")
    scored = score_runtime(runtime, examples, task.output_kind)
    by_oracle = score_runtime(runtime, oracle, task.output_kind) if oracle else None
    return CheckOutcome(result, scored, by_oracle)


def display_path(path: str) -> str:
    """A task path relative to the working directory when it lies below it (readable, portable)."""
    import os

    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def conn_metadata(task: Task, settings: CompileSettings, size: dict[str, Any], spec: dict[str, Any],
                  verified: dict[str, Any], provenance: dict[str, Any], *,
                  fusion: Optional[dict[str, Any]] = None) -> dict[str, Any]:
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


def fusion_for_task(name: str, task: Task, overrides: Optional[Mapping[str, Any]] = None, *,
                    output_values: Optional[Sequence[Any]] = None) -> FusionSpec:
    """The fusion spec a CoNN registered as `name` gets: defaults for the task's vocab and output
    (`output_values`: the compiled model's output decoding, once known), then the user's
    overrides; raises FusionSpecError when they cannot work."""
    values = list(output_values) if output_values else list(task.output_vocab)
    return build_spec(name, list(task.input_vocab), task.output_shape, FusionOverrides.from_json(overrides),
                      output_kind=task.output_kind, output_values=values)
