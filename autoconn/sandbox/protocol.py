"""What the host and the sandbox worker say to each other: one JSON object per line.

The host writes a :class:`Job` line on the worker's stdin; the worker answers with one
``{"type": "result", "result": <JobResult>, "recycle": bool}`` line on its private copy of
the original stdout (the candidate's own prints never reach it). At start the worker sends
one ``{"type": "ready", ...}`` line. ``recycle`` asks the host to replace the worker after
this job (it timed out, ran out of memory or tampered with the interpreter).

This module is imported inside the sandbox image too: standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

STAGES = ("screen", "exec", "evaluate", "compile", "run", "timeout", "crash", "limit", "weights")
# "weights": set on the host when the weights a worker returned do not match their spec
MAX_SOURCE_BYTES = 50_000
MAX_LINE_BYTES = 64 * 1024 * 1024  # a result line longer than this is a protocol violation
_JOB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


@dataclass
class Job:
    """One candidate to check. JSON-serialisable."""

    job_id: str
    source: str  # candidate Python source; must bind `program` to a rasp.SOp
    vocab: list  # input tokens (str/int/bool)
    settings: dict  # CompileSettings.to_json()
    inputs: list  # token sequences: evaluated with rasp.evaluate AND run through the compiled model
    want_weights: bool = True  # write weights + spec so the host can load the CoNN without recompiling
    timeout_seconds: float = 120.0
    # Tests only: False skips the language-level defences (the static screen and the
    # restricted builtins) so that the OS-level walls (network, file system, processes,
    # limits) can be tested with code those would refuse.
    screen: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class JobResult:
    """What became of a Job. ``stage`` is None when ok, else one of STAGES."""

    job_id: str
    ok: bool
    stage: str | None
    error: str  # short, precise, actionable text an LLM could repair from ("" when ok)
    rasp_outputs: list | None = None  # per input: list of values (None entries allowed)
    model_outputs: list | None = None  # per input: decoded compiled-model outputs
    output_encoding: str | None = None  # "categorical" | "numerical"
    size: dict | None = None  # ModelSize.to_json()
    spec: dict | None = None  # ConnSpec.to_json()
    weights_path: str | None = None  # a HOST path to weights.npz
    seconds: float = 0.0
    # Not part of the lead's contract but useful in run logs: which backend ran it and
    # the tail of what the candidate printed (capped).
    backend: str = ""
    log: str = field(default="", repr=False)
    # The compiler's graph facts (autoconn.conn.graph.graph_facts) for `autoconn review`: display
    # only, never used in a verdict; the host drops it when it is not a small JSON object.
    graph: dict | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def failure(cls, job_id: str, stage: str, error: str, seconds: float = 0.0, **extra: Any) -> JobResult:
        assert stage in STAGES, stage
        return cls(job_id=job_id, ok=False, stage=stage, error=error, seconds=seconds, **extra)


def valid_job_id(job_id: Any) -> bool:
    """Job ids name a directory in the exchange area: keep them to a safe alphabet."""
    return isinstance(job_id, str) and bool(_JOB_ID.match(job_id)) and job_id not in (".", "..")


def encode_line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), allow_nan=True) + "\n").encode("utf-8")


def decode_line(line: bytes) -> dict[str, Any]:
    obj = json.loads(line.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("protocol line is not a JSON object")
    return obj
