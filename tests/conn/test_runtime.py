"""The batched runtime equals tracr's own model.apply and rasp.evaluate, at lengths where the
default mlp_exactness is wrong (max_seq_len 16)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from tracr.rasp import rasp

from autoconn.conn.compile import compile_program, default_settings, exactness_for, model_size
from autoconn.conn.runtime import ConnInputError, ConnRuntime
from tests.conn import programs

MAX_SEQ_LEN = 16
CASES: dict[str, tuple[Callable[[], rasp.SOp], list]] = {
    "reverse": (programs.reverse, list("abcd")),
    "hist": (programs.hist, list("ab")),
    "sort_unique": (programs.sort_unique, list(range(20))),
    "frac_prevs": (programs.frac_prevs, list("xyz")),
    "parity": (programs.parity, [0, 1]),
    "length": (programs.length, list("ab")),
}


def sample_inputs(name: str, vocab: list, count: int, seed: int = 0) -> list[list]:
    """Random inputs plus the longest and the all-same ones (where widths reach max_seq_len)."""
    rng = random.Random(seed)
    inputs = [[vocab[0]] * MAX_SEQ_LEN, [vocab[-1]] * (MAX_SEQ_LEN - 1), [vocab[0]]]
    while len(inputs) < count:
        n = rng.randint(1, MAX_SEQ_LEN)
        if name == "sort_unique":
            inputs.append(rng.sample(vocab, n))
        else:
            inputs.append([rng.choice(vocab) for _ in range(n)])
    if name == "sort_unique":
        inputs[:3] = [rng.sample(vocab, MAX_SEQ_LEN), rng.sample(vocab, 3), [vocab[5]]]
    return inputs


def close(a: list, b: list, numerical: bool) -> bool:
    if numerical:
        return len(a) == len(b) and all(abs(x - y) < 1e-4 for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="module", params=sorted(CASES))
def compiled(request):
    build, vocab = CASES[request.param]
    program = build()
    model = compile_program(program, vocab, default_settings(MAX_SEQ_LEN))
    return request.param, program, vocab, model


@pytest.mark.slow
def test_runtime_equals_model_apply_and_rasp_evaluate(compiled):
    name, program, vocab, model = compiled
    runtime = ConnRuntime.from_model(model, MAX_SEQ_LEN)
    numerical = runtime.spec.output_kind == "numerical"
    inputs = sample_inputs(name, vocab, 10)
    batched = runtime.run(inputs)
    for tokens, got in zip(inputs, batched):
        expected = rasp.evaluate(program, tokens)
        applied = model.apply(["BOS"] + tokens).decoded[1:]
        assert close(got, expected, numerical), (name, tokens, got, expected)
        assert close(got, applied, numerical), (name, tokens, got, applied)


@pytest.mark.slow
def test_runtime_on_many_inputs_equals_rasp_evaluate(compiled):
    name, program, vocab, model = compiled
    runtime = ConnRuntime.from_model(model, MAX_SEQ_LEN)
    inputs = sample_inputs(name, vocab, 600, seed=1)  # more than one batch bucket, ragged lengths
    numerical = runtime.spec.output_kind == "numerical"
    for tokens, got in zip(inputs, runtime.run(inputs)):
        assert close(got, rasp.evaluate(program, tokens), numerical), (name, tokens, got)


def test_exactness_scales_with_length():
    assert exactness_for(4) == 100
    for length in (10, 16, 40):
        widest = length + 1
        assert widest * (widest + 1) < exactness_for(length)


def test_model_size_and_input_errors():
    model = compile_program(programs.length(), ["a", "b"], default_settings(6))
    size = model_size(model)
    assert size.layers >= 1 and size.parameters > 0 and size.residual_width > 0
    runtime = ConnRuntime.from_model(model, 6)
    assert runtime.run([["a", "b", "a"]]) == [[3, 3, 3]]
    with pytest.raises(ConnInputError, match="not in this CoNN's vocab"):
        runtime.run([["a", "z"]])
    with pytest.raises(ConnInputError, match="at most 6"):
        runtime.run([["a"] * 7])
    with pytest.raises(ConnInputError, match="not in this CoNN's vocab"):
        runtime.run([["BOS", "a"]])
