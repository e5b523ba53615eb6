"""The one verdict path: a candidate is scored by running the weights it returned, on the
host, through :class:`autoconn.conn.runtime.ConnRuntime`, against examples the sandboxed
worker never received. Nothing the worker says about accuracy is used.

    runtime = load_checked(result.weights_path, result.spec,
                           expect=expected_spec(task.input_vocab, settings, task.output_kind))
    verification = score_runtime(runtime, examples, task.output_kind)   # autoconn.conn.verify

(:func:`autoconn.checking.host_runtime` is the first line for the pipeline and the benchmarks.)

The spec the worker reports is checked against what the host itself asked for (input vocab,
max_seq_len, causal, output kind) and the weights against the spec (shapes, dtype, budget:
:mod:`autoconn.conn.weights_check`) before anything is decompressed or run. A mismatch raises
WeightsError (stage "weights"), which callers turn into a rejected candidate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from autoconn.conn.runtime import ConnRuntime, ConnSpec
from autoconn.conn.weights_check import WeightsError, check_weights_file


def expected_spec(input_vocab: Sequence[Any], settings: Any, output_kind: str) -> dict[str, Any]:
    """What the host knows a CoNN it asked for must look like (from the task and the compile
    settings it sent): the rest of the spec (layers, widths, output values) is bounded by the
    weights budget."""
    return {"vocab": list(input_vocab), "max_seq_len": int(settings.max_seq_len), "causal": bool(settings.causal),
            "output_kind": output_kind, "bos": settings.compiler_bos, "pad": settings.compiler_pad}


def _same_tokens(a: Sequence[Any], b: Sequence[Any]) -> bool:
    key = lambda t: (type(t).__name__, repr(t))  # noqa: E731 - True and 1 are different tokens
    return sorted(map(key, a)) == sorted(map(key, b))


def parse_spec(spec_json: Any, expect: Mapping[str, Any] | None = None) -> ConnSpec:
    """The worker's spec as a ConnSpec, checked against `expect` (see expected_spec)."""
    if not isinstance(spec_json, Mapping):
        raise WeightsError("the sandbox returned no spec for the weights")
    try:
        spec = ConnSpec.from_json(dict(spec_json))
    except (KeyError, TypeError, ValueError) as err:
        raise WeightsError(f"the spec returned with the weights is malformed ({type(err).__name__}: {str(err)[:120]})") from None
    if expect:
        problems = []
        if spec.max_seq_len != expect["max_seq_len"]:
            problems.append(f"max_seq_len {spec.max_seq_len} instead of {expect['max_seq_len']}")
        if spec.causal != expect["causal"]:
            problems.append(f"causal {spec.causal} instead of {expect['causal']}")
        if spec.output_kind != expect["output_kind"]:
            problems.append(f"output kind {spec.output_kind} instead of {expect['output_kind']}")
        if (spec.bos_token, spec.pad_token) != (expect["bos"], expect["pad"]):
            problems.append("other BOS/PAD tokens than the compile settings")
        if not _same_tokens(spec.vocab, expect["vocab"]) or len(spec.input_encoding) != len(expect["vocab"]) + 2:
            problems.append("an input vocab other than the task's")
        if problems:
            raise WeightsError("the weights' spec does not match what was compiled: " + "; ".join(problems))
    return spec


def load_checked(weights_path: str | os.PathLike[str] | None, spec_json: Any, *, expect: Mapping[str, Any] | None = None,
                 residual_width: int | None = None) -> ConnRuntime:
    """The returned weights as a runtime, once their spec matches what was asked for and the arrays
    match their spec. Raises WeightsError otherwise (nothing is decompressed before that)."""
    if not weights_path:
        raise WeightsError("the sandbox returned no weights")
    spec = parse_spec(spec_json, expect)
    check_weights_file(weights_path, spec, residual_width=residual_width)
    return ConnRuntime.load(weights_path, spec)

