"""The demo LM's network: a small causal character transformer in dm-haiku.

It reads one line at a time (``BOS`` then the line's characters), because every example
in the demo text is one independent line. By default it has no positional encoding at all
(NoPE: the causal mask alone tells positions apart). Measured here on the fusion benchmark
with the same training: with learned absolute positions or rotary ones, the LM fused with
the CoNNs stopped ending the line after a long ``reverse`` answer (0% beyond the trained
lengths for learned, from length 13 on for rotary); without positions it ends it (85-100%
up to 16), and it also learns the rules at the trained lengths as well as the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PAD_ID = 0
BOS_ID = 1
FIRST_CHAR_ID = 2  # character i of the alphabet has input id i + FIRST_CHAR_ID


@dataclass(frozen=True)
class LMConfig:
    """Network shape; stored with the weights so a load rebuilds the same network."""

    d_model: int = 64
    num_layers: int = 4
    num_heads: int = 4
    mlp_ratio: int = 4
    positions: int = 64  # BOS plus up to positions-1 characters of the current line
    position_encoding: str = "none"  # "none" (NoPE), "learned" (absolute table) or "rope" (rotary)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LMConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def build_forward(config: LMConfig, alphabet_size: int) -> Any:
    """A haiku-transformed ``(tokens [B, T], positions, segments) -> logits [B, T, alphabet_size]``.

    Positions count from each line's BOS; ``segments`` (training only) numbers the lines
    packed into one row, so several short lines share a row without seeing each other."""
    import haiku as hk
    import jax
    import jax.numpy as jnp

    if config.position_encoding not in ("learned", "rope", "none"):
        raise ValueError(f"position_encoding {config.position_encoding!r}: choose learned, rope or none")
    heads, key_size = config.num_heads, config.d_model // config.num_heads

    def rotate(x: Any, positions: Any) -> Any:
        """Rotary encoding of [B, T, H, K] by each token's position."""
        half = key_size // 2
        freqs = 1.0 / (10000.0 ** (jnp.arange(half) / half))
        angles = positions[:, :, None, None] * freqs
        a, b = x[..., :half], x[..., half:]
        return jnp.concatenate([a * jnp.cos(angles) - b * jnp.sin(angles), a * jnp.sin(angles) + b * jnp.cos(angles)], -1)

    def attention(h: Any, mask: Any, positions: Any, layer: int, init: Any) -> Any:
        batch, length, _ = h.shape
        q, k, v = (hk.Linear(heads * key_size, name=f"attn_{layer}_{n}")(h).reshape(batch, length, heads, key_size)
                   for n in ("query", "key", "value"))
        if config.position_encoding == "rope":
            q, k = rotate(q, positions), rotate(k, positions)
        logits = jnp.einsum("bthd,bshd->bhts", q, k) / np.sqrt(key_size)
        weights = jax.nn.softmax(jnp.where(mask, logits, -1e30))
        mixed = jnp.einsum("bhts,bshd->bthd", weights, v).reshape(batch, length, heads * key_size)
        return hk.Linear(config.d_model, w_init=init, name=f"attn_{layer}_out")(mixed)

    def block(x: Any, mask: Any, positions: Any, layer: int) -> Any:
        init = hk.initializers.VarianceScaling(1.0 / (2 * config.num_layers))
        h = hk.LayerNorm(-1, True, True, name=f"ln_attn_{layer}")(x)
        x = x + attention(h, mask, positions, layer, init)
        h = hk.LayerNorm(-1, True, True, name=f"ln_mlp_{layer}")(x)
        h = jax.nn.gelu(hk.Linear(config.mlp_ratio * config.d_model, name=f"mlp_in_{layer}")(h))
        return x + hk.Linear(config.d_model, w_init=init, name=f"mlp_out_{layer}")(h)

    def forward(tokens: Any, positions: Any = None, segments: Any = None) -> Any:
        length = tokens.shape[1]
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(length), tokens.shape)
        x = hk.Embed(alphabet_size + FIRST_CHAR_ID, config.d_model, name="embed")(tokens)
        if config.position_encoding == "learned":
            table = hk.get_parameter("positions", [config.positions, config.d_model],
                                     init=hk.initializers.TruncatedNormal(0.02))
            x = x + table[positions]
        mask = jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]
        if segments is not None:  # packed training rows: a line attends only to itself
            mask = mask & (segments[:, None, :, None] == segments[:, None, None, :])
        for layer in range(config.num_layers):
            x = block(x, mask, positions, layer)
        x = hk.LayerNorm(-1, True, True, name="ln_final")(x)
        return hk.Linear(alphabet_size, name="unembed")(x)

    return hk.without_apply_rng(hk.transform(forward))


def flatten(params: Any) -> dict[str, np.ndarray]:
    """Haiku params as flat ``module/name`` arrays (the npz layout)."""
    return {f"{module}/{name}": np.asarray(value, dtype=np.float32)
            for module, inner in params.items() for name, value in inner.items()}


def unflatten(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    import jax.numpy as jnp

    params: dict[str, dict[str, Any]] = {}
    for key, value in arrays.items():
        module, name = key.rsplit("/", 1)
        params.setdefault(module, {})[name] = jnp.asarray(value)
    return params


def count_parameters(arrays: dict[str, np.ndarray]) -> int:
    return sum(int(a.size) for a in arrays.values())


def make_last_logits(config: LMConfig, alphabet_size: int, params: Any) -> Callable[[Any, Any], Any]:
    """Jitted ``(tokens [B, positions], last [B]) -> logits [B, alphabet]`` at each row's last
    real position; callers keep shapes fixed so it compiles once per batch bucket."""
    import jax
    import jax.numpy as jnp

    network = build_forward(config, alphabet_size)

    def last_logits(tokens: Any, last: Any) -> Any:
        logits = network.apply(params, tokens)
        return jnp.take_along_axis(logits, last[:, None, None], axis=1)[:, 0]

    return jax.jit(last_logits)
