"""RASP program -> tracr transformer, with the settings that avoid tracr's silent traps.

tracr's default ``mlp_exactness=100`` makes SelectorWidth wrong from width 10 up (no error
is raised), so the exactness is scaled to the compiled length here. Model-written programs
are compiled only inside the sandbox worker; this module is what the worker calls.

Abstract initialisation (every caller, not only the worker): tracr's ``assemble_craft_model``
calls ``forward.init(PRNGKey(0), [[1, 2, 3]])`` eagerly, only to learn the parameter shapes:
it then zeroes every ``transformer/*`` parameter and writes its own weights, and the
embeddings are constants. Run eagerly, that init compiles one XLA executable per operation
and shape - about 35 per program, 3-8 s on these machines, ~90% of a compile for any program
whose shapes are new. :func:`install_fast_init` swaps the ``hk`` that tracr's assemble module
sees for a copy whose ``transform(f).init`` traces ``f`` abstractly (``jax.eval_shape``,
nothing compiled), records every parameter's shape and initializer, and builds the same dict:
zeros for ``transformer/*``, the initializer's concrete constant for the embeddings. Anything
it does not recognise falls back to the real init. The result is identical array for array
(tests/conn/test_compile_fastinit.py); ``compile_program(..., fast_init=False)`` compiles
with tracr's own eager init.
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from autoconn.task import BOS, PAD, Token


@dataclass(frozen=True)
class CompileSettings:
    """Everything, besides the program and vocab, that decides the compiled weights."""

    max_seq_len: int
    mlp_exactness: int
    compiler_bos: str = BOS
    compiler_pad: str = PAD
    causal: bool = False
    # Undo the 1/sqrt(key_size) attention scaling tracr leaves in (see runtime.sharpen_attention).
    sharpen_attention: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompileSettings:
        known = {f.name for f in fields(cls)}  # tolerate settings written by a newer version
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class ModelSize:
    """Size figures of a compiled model, as reported in conn.json and by `autoconn bench`."""

    layers: int
    heads: int
    residual_width: int
    mlp_hidden: int
    parameters: int

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def exactness_for(max_seq_len: int) -> int:
    """mlp_exactness that keeps SelectorWidth exact up to max_seq_len.

    A width w decodes right only when w*(w+1) < mlp_exactness; widths reach max_seq_len+1
    counting BOS, so 2*L*(L+1) leaves a margin (and never less than tracr's default 100)."""
    return max(100, 2 * (max_seq_len + 1) * (max_seq_len + 2))


def default_settings(max_seq_len: int) -> CompileSettings:
    return CompileSettings(max_seq_len=max_seq_len, mlp_exactness=exactness_for(max_seq_len))


def compile_program(program: Any, vocab: Sequence[Token], settings: CompileSettings, *, fast_init: bool = True,
                    with_graph: bool = False) -> Any:
    """Compiles a rasp.SOp; returns tracr's AssembledTransformerModel (raises on failure), or with
    `with_graph` (model, graph, sources): the graph tracr built, for autoconn.conn.graph.graph_facts.

    tracr's own passes, run one by one (autoconn.conn.graph.compile_with_graph) so the graph is
    kept. ``fast_init`` (default) initialises the haiku model abstractly (same weights, no XLA
    compiles; see the module docstring); False runs tracr's own eager init."""
    from autoconn.conn.graph import compile_with_graph

    install_fast_init()
    token = _FAST_INIT.set(fast_init)
    try:
        model, graph, sources = compile_with_graph(program, vocab, settings)
    finally:
        _FAST_INIT.reset(token)
    return (model, graph, sources) if with_graph else model


# Whether the patched assemble module initialises abstractly (compile_program(fast_init=...)).
_FAST_INIT: contextvars.ContextVar[bool] = contextvars.ContextVar("autoconn_fast_init", default=True)


def fast_transform(f: Callable[..., Any], *, apply_rng: bool = True) -> Any:
    """``hk.transform`` whose ``init`` traces ``f`` abstractly and rebuilds tracr's parameters."""
    import haiku as hk
    import jax
    import numpy as np

    real = hk.transform(f, apply_rng=apply_rng)

    def init(rng: Any, *args: Any, **kwargs: Any) -> Any:
        if not _FAST_INIT.get():
            return real.init(rng, *args, **kwargs)
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

    init._original_fn = f  # type: ignore[attr-defined]  # hk.without_apply_rng looks for it on the function
    return hk.Transformed(init=init, apply=real.apply)


def install_fast_init() -> bool:
    """Points tracr's assemble module at the fast init (idempotent; re-installs if something
    restored the real haiku). False if it could not (a different tracr: its own init is kept)."""
    try:
        import haiku as hk
        from tracr.compiler import assemble

        if getattr(assemble.hk, "_autoconn_fast_init", False):
            return True
        shim = types.ModuleType("haiku_fast_init")
        shim.__dict__.update({k: v for k, v in vars(hk).items() if not k.startswith("__")})
        shim.__dict__.update(transform=fast_transform, _autoconn_fast_init=True)
        assemble.hk = shim
    except Exception:  # noqa: BLE001 - a different tracr: keep its own init
        return False
    return True


def model_size(model: Any) -> ModelSize:
    """Reads layers, heads, widths and the parameter count off an assembled model."""
    config = model.model_config
    parameters = sum(int(array.size) for module in model.params.values() for array in module.values())
    return ModelSize(
        layers=int(config.num_layers),
        heads=int(config.num_heads),
        residual_width=len(model.residual_labels),
        mlp_hidden=int(config.mlp_hidden_size),
        parameters=parameters,
    )
