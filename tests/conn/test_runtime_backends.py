"""The numpy forward (never imports jax) and the vectorised encode/decode give exactly what
the jitted runtime gives: every library CoNN, padded batches of mixed lengths, numerical outputs."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tracr.rasp import rasp

from autoconn.conn import runtime as rt
from autoconn.conn.artifact import Library
from autoconn.conn.compile import CompileSettings, compile_program, default_settings
from autoconn.conn.runtime import ConnInputError, ConnRuntime, ConnSpec
from tests.conftest import FIXTURE_LIBRARY
from tests.conn import programs

LIBRARY = FIXTURE_LIBRARY
LIBRARY_NAMES = ["copy", "hist", "last_token", "length", "parity", "reverse", "sort", "sort_unique"]
BATCH_SIZES = (1, 7, 8, 9, 63, 300, 513)  # every bucket, filler rows, a split remainder, more than one chunk


def mixed_inputs(vocab: list, max_len: int, count: int, seed: int, unique: bool = False) -> list[list]:
    """Ragged random inputs, plus the longest, the shortest and all-same ones."""
    rng = random.Random(seed)
    pick = (lambda n: rng.sample(vocab, min(n, len(vocab)))) if unique else (lambda n: [rng.choice(vocab) for _ in range(n)])
    inputs = [pick(max_len), pick(1), [vocab[0]] * (1 if unique else max_len), [vocab[-1]] * (1 if unique else max_len - 1)]
    while len(inputs) < count:
        inputs.append(pick(rng.randint(1, max_len)))
    return inputs


def reference_run(runtime: ConnRuntime, inputs: list[list]) -> list[list]:
    """The runtime as it was: token-by-token encoding, the jitted forward, per-value decoding."""
    ids, _ = rt._encode_reference(runtime.spec, inputs)
    raw = runtime.forward(ids, backend="jax")
    out = []
    for row, sequence in enumerate(inputs):
        values = raw[row, 1:1 + len(sequence)]
        if runtime.spec.output_kind == "categorical":
            out.append([runtime.spec.output_decoding[int(i)] for i in values])
        else:
            out.append([float(v) for v in values])
    return out


@pytest.fixture(scope="module", params=LIBRARY_NAMES)
def library_runtime(request):
    entry = Library(LIBRARY).get(request.param)
    return request.param, entry.runtime()


def test_numpy_forward_equals_jitted_runtime_on_library_conns(library_runtime):
    name, runtime = library_runtime
    spec = runtime.spec
    inputs = mixed_inputs(spec.vocab, spec.max_seq_len, 2000, seed=len(name), unique=name == "sort_unique")
    expected = reference_run(runtime, inputs)
    assert runtime.run(inputs, backend="jax") == expected
    assert runtime.run(inputs, backend="numpy") == expected
    ids = runtime.encode(inputs)
    assert np.array_equal(runtime.forward(ids, "numpy"), runtime.forward(ids, "jax"))  # raw argmax ids too
    for size in BATCH_SIZES:  # padded batches of mixed lengths, one call each
        batch = inputs[size:2 * size]
        assert runtime.run(batch, backend="numpy") == runtime.run(batch, backend="jax") == expected[size:2 * size], size


def test_output_types_are_the_vocab_values(library_runtime):
    name, runtime = library_runtime
    spec = runtime.spec
    outputs = runtime.run([spec.vocab[:1] * 2, spec.vocab[-1:]], backend="numpy")
    for row in outputs:
        for value in row:
            assert any(value == d and type(value) is type(d) for d in spec.output_decoding), (name, value)


def test_lazy_load_never_decompresses_empty_attention():
    entry = Library(LIBRARY).get("copy")  # one layer, its attention sublayer all zero
    runtime = entry.runtime()
    assert runtime.run([["a", "b"]], backend="numpy") == [["a", "b"]]
    loaded = set(runtime.weights._loaded)
    assert not any(name.endswith(("attn/query/w", "attn/key/w", "attn/value/w")) for name in loaded)
    assert len(runtime.weights) == 15 and runtime.parameters > 0  # still a full mapping when asked


NUMERICAL = {
    "frac_prevs": (programs.frac_prevs, list("xyz"), False),
    "frac_prevs_causal": (programs.frac_prevs, list("xyz"), True),
    "mean_of_same": (lambda: rasp.numerical(rasp.Aggregate(
        rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ),
        rasp.numerical(rasp.Map(lambda t: 1 if t == "x" else 0, rasp.tokens)), default=0)), list("xyz"), False),
}


@pytest.mark.parametrize("name", sorted(NUMERICAL))
def test_numerical_outputs_agree_within_1e_6(name):
    build, vocab, causal = NUMERICAL[name]
    settings = CompileSettings(**{**default_settings(16).to_json(), "causal": causal})
    program = build()
    runtime = ConnRuntime.from_model(compile_program(program, vocab, settings), 16, causal)
    assert runtime.spec.output_kind == "numerical"
    inputs = mixed_inputs(vocab, 16, 1200, seed=7)
    jitted = runtime.run(inputs, backend="jax")
    numpy_out = runtime.run(inputs, backend="numpy")
    assert [len(row) for row in numpy_out] == [len(row) for row in jitted]
    worst = max(abs(a - b) for x, y in zip(jitted, numpy_out) for a, b in zip(x, y))
    assert worst <= 1e-6, worst
    assert all(type(v) is float for row in numpy_out for v in row)
    assert reference_run(runtime, inputs) == jitted
    for tokens, got in zip(inputs[:40], numpy_out):
        assert got == pytest.approx([float(v) for v in rasp.evaluate(program, tokens)], abs=1e-4)


def _spec(vocab: list, max_seq_len: int = 4) -> ConnSpec:
    encoding = {token: index for index, token in enumerate(vocab)}
    encoding.update({"BOS": len(vocab), "PAD": len(vocab) + 1})
    return ConnSpec(input_encoding=encoding, bos_token="BOS", pad_token="PAD", output_kind="categorical",
                    output_decoding=tuple(vocab), max_seq_len=max_seq_len, num_layers=1, num_heads=1, key_size=1, mlp_hidden=1)


@pytest.mark.parametrize("vocab", [[0, 1, 2], list("abc"), [True, False, "x"], [True, 2, "a"], [1.5, 2, "z"]])
def test_vectorised_encode_equals_reference(vocab):
    codec = rt._Codec(_spec(vocab))
    rng = random.Random(3)
    inputs = [[rng.choice(vocab) for _ in range(rng.randint(1, 4))] for _ in range(200)] + [vocab[:1]]
    ids, lengths = codec.encode(inputs)
    ref_ids, ref_lengths = rt._encode_reference(codec.spec, inputs)
    assert np.array_equal(ids, ref_ids) and np.array_equal(lengths, ref_lengths)
    assert ids.dtype == np.int32
    raw = ids.astype(np.int64)  # pretend the forward echoed the ids: decode maps them back
    raw[raw >= len(vocab)] = 0
    decoded = codec.decode(raw, lengths)
    assert [[type(v) for v in row] for row in decoded] == [[type(v) for v in row] for row in inputs]
    assert decoded == inputs


@pytest.mark.parametrize("vocab, bad", [
    ([0, 1, 2], [[0, 1], [True, 0]]),  # True is not 1
    ([True, 2], [[True], [1]]),  # nor 1 True
    ([0, 1], [[0], [np.int64(1)]]),  # numpy scalars are not the vocab's ints
    (list("ab"), [["a"], ["BOS"]]),
    (list("ab"), [["a"], ["a", "PAD"]]),
    (list("ab"), [["a"], [["a"]]]),  # unhashable
    (list("ab"), [["a"], ["a"] * 5]),
    (list("ab"), [["a"], []]),
    (list("ab"), [["a", "c"], ["a"] * 5]),  # the first bad input is the one reported
])
def test_encode_errors_match_reference(vocab, bad):
    codec = rt._Codec(_spec(vocab))
    with pytest.raises(ConnInputError) as reference:
        rt._encode_reference(codec.spec, bad)
    with pytest.raises(ConnInputError) as fast:
        codec.encode(bad)
    assert str(fast.value) == str(reference.value)
    assert fast.value.row == reference.value.row is not None


def test_empty_batch_and_backend_choice(monkeypatch):
    runtime = Library(LIBRARY).get("hist").runtime()
    assert runtime.run([]) == [] and runtime.run([], backend="jax") == []
    with pytest.raises(ValueError, match="backend"):
        runtime.run([["a"]], backend="torch")
    monkeypatch.delitem(__import__("sys").modules, "jax", raising=False)
    assert rt.choose_backend(1) == "numpy" and rt.choose_backend(rt.NUMPY_MAX_INPUTS_COLD + 1) == "jax"
    assert rt.choose_backend(10**6, "numpy") == "numpy" and rt.choose_backend(1, "jax") == "jax"


def test_fixed_batches_cover_every_row_once():
    for count in (1, 2, 7, 8, 9, 33, 63, 64, 65, 300, 488, 511, 512, 513, 1100):
        ids = np.arange(count)[:, None]
        chunks = list(rt._fixed_batches(ids))
        assert all(len(c) in rt.BATCH_BUCKETS and 0 < real <= len(c) for c, real in chunks)
        real_rows = np.concatenate([c[:real] for c, real in chunks])[:, 0]
        assert list(real_rows) == list(range(count)), count
        filler = sum(len(c) - real for c, real in chunks)
        assert filler <= max(len(chunks[-1][0]) // 2, 7)  # at most half of the last chunk
        assert all(real == len(c) for c, real in chunks[:-1])  # only the last chunk is padded


def test_forward_flops_counts_the_plan():
    runtime = Library(LIBRARY).get("copy").runtime()  # one MLP sublayer and the unembedding
    width = runtime.weights["token_embed/embeddings"].shape[1]
    t = runtime.spec.max_seq_len + 1
    hidden = runtime._get_layers().plan[0][1]["w1"].shape[1]
    assert runtime.flops_per_input == 4 * t * width * hidden + 2 * t * width * runtime.weights["unembed"].shape[1]


def test_one_blas_thread_restores_the_setting():
    setter = rt._OneBlasThread._find()
    if setter is None:
        pytest.skip("numpy here is not linked to an OpenBLAS with a per-thread setting")
    before = setter(3)
    try:
        with rt._OneBlasThread():
            assert setter(1) == 1
        assert setter(3) == 3
    finally:
        setter(before)
