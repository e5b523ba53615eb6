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
from autoconn.conn.verify import Verification, verify_outputs
from autoconn.fusion.metadata import FusionOverrides, FusionSpec, build_spec
from autoconn.task import Example, Task


@dataclass(frozen=True)
class CheckOutcome:
    """The sandbox's answer for one candidate and, when it compiled, how its outputs scored."""

    result: Any  # autoconn.sandbox.protocol.JobResult
    verification: Verification | None

    @property
    def passed(self) -> bool:
        return bool(self.result.ok) and self.verification is not None and self.verification.passed

    def reason(self) -> str:
        """One short paragraph: why the candidate failed (empty when it passed)."""
        if not self.result.ok:
            return f"{self.result.stage}: {self.result.error}"
        if self.verification is None or self.verification.passed:
            return ""
        v = self.verification
        return f"wrong on {v.total - v.correct} of {v.total} examples"


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
                 examples: Sequence[Example], *, want_weights: bool = True,
                 worker_examples: Optional[Sequence[Example]] = None, timeout_seconds: float = 180.0) -> CheckOutcome:
    """Compiles the candidate in the sandbox, then scores the weights it returned on the host
    on `examples` (host_verdict.score_weights: nothing the worker reports about accuracy is
    used). The worker receives only `worker_examples` (inputs it checks rasp.evaluate against
    the compiled model on, for precise error messages; default none: tracr compiles from the
    vocab alone), never the examples the verdict is computed on unless the caller passes them."""
    sent = list(worker_examples) if worker_examples is not None else []
    result = sandbox.run(make_job(source, task, settings, sent, want_weights=True, timeout_seconds=timeout_seconds))
    if not result.ok:
        return CheckOutcome(result, None)
    return CheckOutcome(*host_scored(result, task, settings, examples))


def host_scored(result: Any, task: Task, settings: CompileSettings, examples: Sequence[Example]) -> tuple[Any, Optional[Verification]]:
    """(result, verification) with the verification computed on the host from the returned
    weights; bad weights turn the result into a failure at stage "weights"."""
    from autoconn.conn.host_verdict import expected_spec, score_weights
    from autoconn.conn.weights_check import WeightsError
    from autoconn.sandbox.protocol import JobResult

    try:
        verification = score_weights(result.weights_path, result.spec, examples, task.output_kind,
                                     expect=expected_spec(task.input_vocab, settings, task.output_kind),
                                     residual_width=(result.size or {}).get("residual_width"))
    except WeightsError as err:
        failed = JobResult.failure(result.job_id, "weights", f"the returned weights were refused: {err}",
                                   seconds=result.seconds, size=result.size, output_encoding=result.output_encoding)
        failed.backend = result.backend
        return failed, None
    return result, verification


def display_path(path: str) -> str:
    """A task path relative to the working directory when it lies below it (readable, portable)."""
    import os

    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def conn_metadata(task: Task, settings: CompileSettings, size: dict[str, Any], spec: dict[str, Any],
                  verification: Verification, provenance: dict[str, Any], *,
                  fusion: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """conn.json content (DESIGN.md): what a reviewer and the fusion step need to know.

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
        "verification": verification.to_json(max_failures=0),
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
