"""compile_program initialises abstractly for every caller and gets tracr's eager weights exactly."""

from __future__ import annotations

import numpy as np
import pytest

from autoconn.conn.compile import compile_program, default_settings, install_fast_init
from tests.conn import programs


def _params_equal(slow, fast) -> None:
    assert set(slow.params) == set(fast.params)
    for module, params in slow.params.items():
        for name, array in params.items():
            other = fast.params[module][name]
            assert np.asarray(array).dtype == np.asarray(other).dtype
            assert np.array_equal(np.asarray(array), np.asarray(other)), (module, name)
    assert len(slow.residual_labels) == len(fast.residual_labels)  # names carry rasp's global ids


@pytest.mark.parametrize("build, vocab", [(programs.reverse, list("abc")), (programs.frac_prevs, list("xyz")),
                                          (programs.sort_unique, list(range(5)))])
def test_fast_init_is_the_default_and_gives_eager_weights(build, vocab) -> None:
    settings = default_settings(6)
    eager = compile_program(build(), vocab, settings, fast_init=False)
    fast = compile_program(build(), vocab, settings)
    _params_equal(eager, fast)


def test_install_is_idempotent_and_survives_a_restore() -> None:
    import haiku as hk
    from tracr.compiler import assemble

    from autoconn.sandbox import fastinit  # the worker's old import keeps working

    assert install_fast_init() and fastinit.install()
    assert getattr(assemble.hk, "_autoconn_fast_init", False)
    shim = assemble.hk
    assert install_fast_init() and assemble.hk is shim
    assemble.hk = hk  # someone restores the real haiku: the next compile installs it again
    try:
        compile_program(programs.length(), ["a", "b"], default_settings(4))
        assert getattr(assemble.hk, "_autoconn_fast_init", False)
    finally:
        install_fast_init()
