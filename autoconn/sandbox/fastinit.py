"""Make tracr's model assembly cheap: skip its eager haiku initialisation.

tracr's ``assemble_craft_model`` calls ``forward.init(PRNGKey(0), [[1, 2, 3]])`` eagerly,
only to learn the parameter shapes: it then zeroes every ``transformer/*`` parameter and
writes its own weights, and the embeddings are constants. Run eagerly, that init compiles
one XLA executable per operation and shape - about 35 per program, 3-8 s on this
machine, ~90% of a compile for any program whose shapes are new.

``install()`` swaps the ``hk`` that tracr's assemble module sees for a copy whose
``transform(f).init`` traces ``f`` abstractly (``jax.eval_shape``, nothing compiled),
records every parameter's shape and initializer, and builds the same dict: zeros for
``transformer/*``, the initializer's concrete constant for the embeddings. Anything it
does not recognise falls back to the real init. The result is identical array for array
(tests/sandbox/test_fastinit.py); the worker also compares the compiled model with
``rasp.evaluate`` on every job.
"""

from __future__ import annotations

import types
from typing import Any, Callable

_installed = False


def fast_transform(f: Callable[..., Any], *, apply_rng: bool = True) -> Any:
    import haiku as hk
    import jax
    import numpy as np

    real = hk.transform(f, apply_rng=apply_rng)

    def init(rng: Any, *args: Any, **kwargs: Any) -> Any:
        seen: dict[tuple[str, str], Any] = {}

        def creator(next_creator: Any, shape: Any, dtype: Any, init_fn: Any, context: Any) -> Any:
            key = (context.module_name, context.name)
            if "transformer" in context.module_name:
                seen[key] = ("zeros", tuple(shape), dtype)
            else:
                value = init_fn(shape, dtype)
                seen[key] = ("value", tuple(shape), value)
            return next_creator(shape, dtype, init_fn)

        def recorded(*a: Any, **k: Any) -> Any:
            # compile-time eval: constants (the embedding matrices) stay concrete in the trace
            with hk.custom_creator(creator), jax.ensure_compile_time_eval():
                return f(*a, **k)

        try:
            jax.eval_shape(hk.transform(recorded, apply_rng=apply_rng).init, rng, *args, **kwargs)
            params: dict[str, dict[str, Any]] = {}
            for (module, name), (kind, shape, payload) in seen.items():
                if kind == "zeros":
                    value = np.zeros(shape, payload)
                else:
                    if isinstance(payload, jax.core.Tracer) or tuple(payload.shape) != shape:
                        raise ValueError("parameter is not a constant")
                    value = payload
                params.setdefault(module, {})[name] = value
            return params
        except Exception:  # noqa: BLE001 - anything unexpected: do what tracr does
            return real.init(rng, *args, **kwargs)

    init._original_fn = f  # type: ignore[attr-defined] - hk.without_apply_rng looks for it
    return hk.Transformed(init=init, apply=real.apply)


def install() -> bool:
    """Points tracr's assemble module at the fast init (idempotent). False if it could not."""
    global _installed
    if _installed:
        return True
    try:
        import haiku as hk
        from tracr.compiler import assemble

        shim = types.ModuleType("haiku_fast_init")
        shim.__dict__.update({k: v for k, v in vars(hk).items() if not k.startswith("__")})
        shim.transform = fast_transform  # type: ignore[attr-defined]
        assemble.hk = shim  # type: ignore[attr-defined]
        _installed = True
    except Exception:  # noqa: BLE001 - a different tracr: keep its own init
        return False
    return True
