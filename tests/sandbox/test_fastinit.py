"""The worker's fast haiku init gives tracr exactly the weights of its own eager init."""

from __future__ import annotations

import numpy as np

from autoconn.conn.compile import compile_program, default_settings


def _programs():  # trusted programs written here, compiled in the test process
    from tracr.compiler import lib
    from tracr.rasp import rasp

    length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE))
    opp = rasp.SequenceMap(lambda n, i: n - i - 1, length, rasp.indices)
    reverse = rasp.Aggregate(rasp.Select(rasp.indices, opp, rasp.Comparison.EQ), rasp.tokens)
    return [reverse, lib.make_frac_prevs(rasp.tokens == "a")]


def test_fast_init_gives_identical_weights() -> None:
    from tracr.compiler import assemble

    from autoconn.sandbox import fastinit

    original = assemble.hk
    vocab, settings = ["a", "b", "c"], default_settings(6)
    try:
        assemble.hk = original
        fastinit._installed = False
        reference = [compile_program(p, vocab, settings) for p in _programs()]
        assert fastinit.install()
        fast = [compile_program(p, vocab, settings) for p in _programs()]
    finally:
        assemble.hk = original
        fastinit._installed = False
    for slow_model, fast_model in zip(reference, fast):
        assert set(slow_model.params) == set(fast_model.params)
        for module, params in slow_model.params.items():
            for name, array in params.items():
                other = fast_model.params[module][name]
                assert np.asarray(array).dtype == np.asarray(other).dtype
                assert np.array_equal(np.asarray(array), np.asarray(other)), (module, name)
        assert len(slow_model.residual_labels) == len(fast_model.residual_labels)
