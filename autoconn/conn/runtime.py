"""Run a compiled CoNN on many inputs at once: one jitted forward over fixed padded batches.

tracr's own ``model.apply`` runs one input at a time (~0.5 s each) and never sets its pad
token, so padded positions are attended like real ones. This runtime re-implements the
same forward pass in plain JAX from the weights alone (no recompiling, no haiku), masks
padded keys, and keeps batch shapes fixed so each shape is traced once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np

from autoconn.conn.weights_check import check_weights_file
from autoconn.task import Token, Value

BATCH_BUCKETS = (1, 8, 64, 512)


class ConnInputError(ValueError):
    """An input the CoNN cannot take: a token outside its vocab or a sequence too long."""


@dataclass(frozen=True)
class ConnSpec:
    """What the forward pass and the decoder need besides the weights (stored in conn.json)."""

    input_encoding: dict[Token, int]
    bos_token: str
    pad_token: str
    output_kind: Literal["categorical", "numerical"]
    output_decoding: tuple[Value, ...]  # id -> value; empty when numerical
    max_seq_len: int
    num_layers: int
    num_heads: int
    key_size: int
    mlp_hidden: int
    causal: bool = False

    @property
    def vocab(self) -> list[Token]:
        return [t for t in self.input_encoding if t not in (self.bos_token, self.pad_token)]

    def to_json(self) -> dict[str, Any]:
        return {
            "input_encoding": [[token, index] for token, index in self.input_encoding.items()],
            "bos_token": self.bos_token,
            "pad_token": self.pad_token,
            "output_kind": self.output_kind,
            "output_decoding": list(self.output_decoding),
            "max_seq_len": self.max_seq_len,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "key_size": self.key_size,
            "mlp_hidden": self.mlp_hidden,
            "causal": self.causal,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ConnSpec":
        return cls(
            input_encoding={token: int(index) for token, index in data["input_encoding"]},
            bos_token=data["bos_token"],
            pad_token=data["pad_token"],
            output_kind=data["output_kind"],
            output_decoding=tuple(data["output_decoding"]),
            max_seq_len=int(data["max_seq_len"]),
            num_layers=int(data["num_layers"]),
            num_heads=int(data["num_heads"]),
            key_size=int(data["key_size"]),
            mlp_hidden=int(data["mlp_hidden"]),
            causal=bool(data.get("causal", False)),
        )


def _unembed_matrix(model: Any) -> np.ndarray:
    """tracr keeps the residual->output projection in a closure, not in params: recover it
    by unembedding the identity matrix."""
    import haiku as hk
    import jax.numpy as jnp

    width = len(model.residual_labels)

    @hk.without_apply_rng
    @hk.transform
    def unembed(x: Any) -> Any:
        return model.get_compiled_model().unembed(x, use_unembed_argmax=False)

    matrix = np.asarray(unembed.apply({}, jnp.eye(width)))
    return matrix.reshape(width, -1)


def sharpen_attention(weights: dict[str, np.ndarray], key_size: int) -> None:
    """Undoes the 1/sqrt(key_size) that the assembled model divides attention logits by.

    tracr builds each head's logits at its intended softness (the craft heads' own scale), but
    the haiku attention then divides by sqrt(key_size) of the widest head, which tracr never
    compensates: averages leak (frac_prevs off by ~1e-5, an empty numerical mean is not 0) and
    some deep programs come out wrong. Scaling the queries back restores tracr's intent."""
    factor = np.float32(math.sqrt(key_size))
    for name in list(weights):
        if name.endswith("/attn/query/w") or name.endswith("/attn/query/b"):
            weights[name] = weights[name] * factor


def extract(model: Any, max_seq_len: int, causal: bool = False, *, sharpen: bool = True) -> tuple[ConnSpec, dict[str, np.ndarray]]:
    """Splits an assembled tracr model into a JSON-able spec and flat numpy weights
    (with the attention scale corrected unless `sharpen` is False)."""
    encoder = model.input_encoder
    categorical = hasattr(model.output_encoder, "encoding_map")
    decoding: tuple[Value, ...] = ()
    if categorical:
        by_index = sorted(model.output_encoder.encoding_map.items(), key=lambda item: item[1])
        decoding = tuple(value for value, _ in by_index)
    config = model.model_config
    spec = ConnSpec(
        input_encoding=dict(encoder.encoding_map),
        bos_token=encoder.bos_token,
        pad_token=encoder.pad_token,
        output_kind="categorical" if categorical else "numerical",
        output_decoding=decoding,
        max_seq_len=max_seq_len,
        num_layers=int(config.num_layers),
        num_heads=int(config.num_heads),
        key_size=int(config.key_size),
        mlp_hidden=int(config.mlp_hidden_size),
        causal=causal,
    )
    weights = {f"{module}/{name}": np.asarray(array, dtype=np.float32)
               for module, params in model.params.items() for name, array in params.items()}
    weights["unembed"] = _unembed_matrix(model).astype(np.float32)
    if sharpen:
        sharpen_attention(weights, spec.key_size)
    return spec, weights


def _layer_plan(spec: ConnSpec, weights: dict[str, np.ndarray]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The non-empty sublayers, in order, with all-zero MLP hidden units removed.

    tracr pads every layer to the widest MLP and zeroes the sublayers a program does not use;
    dropping those is exact (they add 0 to the residual) and saves most of the arithmetic."""
    plan: list[tuple[str, dict[str, np.ndarray]]] = []
    for layer in range(spec.num_layers):
        attn = f"transformer/layer_{layer}/attn"
        if np.any(weights[f"{attn}/linear/w"]) or np.any(weights[f"{attn}/linear/b"]):
            plan.append(("attn", {part: weights[f"{attn}/{part}"] for part in (
                "query/w", "query/b", "key/w", "key/b", "value/w", "value/b", "linear/w", "linear/b")}))
        mlp = f"transformer/layer_{layer}/mlp"
        w1, b1 = weights[f"{mlp}/linear_1/w"], weights[f"{mlp}/linear_1/b"]
        w2, b2 = weights[f"{mlp}/linear_2/w"], weights[f"{mlp}/linear_2/b"]
        live = (np.any(w1, axis=0) | (b1 != 0)) & np.any(w2, axis=1)
        if live.any() or np.any(b2):
            plan.append(("mlp", {"w1": w1[:, live], "b1": b1[live], "w2": w2[live, :], "b2": b2}))
    return plan


def _make_forward(spec: ConnSpec, weights: dict[str, np.ndarray]) -> Callable[[Any], Any]:
    """The compiled transformer's forward pass (tracr's model.py semantics, pad keys masked).

    The weights are closed over as constants rather than passed as arguments (XLA folds them;
    measured twice as fast here) and empty sublayers are skipped (see _layer_plan)."""
    import jax
    import jax.numpy as jnp

    plan = [(kind, {name: jnp.asarray(a) for name, a in params.items()}) for kind, params in _layer_plan(spec, weights)]
    token_embed = jnp.asarray(weights["token_embed/embeddings"])
    pos_embed = jnp.asarray(weights["pos_embed/embeddings"])
    unembed = jnp.asarray(weights["unembed"])
    heads, key_size = spec.num_heads, spec.key_size
    pad_id = spec.input_encoding[spec.pad_token]
    scale = np.float32(math.sqrt(key_size))

    def attention(x: Any, p: dict[str, Any], mask: Any) -> Any:
        batch, length, _ = x.shape
        q = (x @ p["query/w"] + p["query/b"]).reshape(batch, length, heads, key_size)
        k = (x @ p["key/w"] + p["key/b"]).reshape(batch, length, heads, key_size)
        v = (x @ p["value/w"] + p["value/b"]).reshape(batch, length, heads, key_size)
        logits = jnp.where(mask, jnp.einsum("bthd,bThd->bhtT", q, k) / scale, -1e30)
        mixed = jnp.einsum("bhtT,bThd->bthd", jax.nn.softmax(logits), v).reshape(batch, length, heads * key_size)
        return mixed @ p["linear/w"] + p["linear/b"]

    def forward(tokens: Any) -> Any:
        length = tokens.shape[1]
        x = token_embed[tokens] + pos_embed[jnp.arange(length)][None]
        mask = (tokens != pad_id)[:, None, None, :]  # [B, 1, 1, T]: padded keys are never attended
        if spec.causal:
            mask = mask & jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]
        for kind, p in plan:
            if kind == "attn":
                x = x + attention(x, p, mask)
            else:
                x = x + jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        out = x @ unembed
        if spec.output_kind == "categorical":
            return jnp.argmax(out, axis=-1)
        return out[..., 0]

    return jax.jit(forward)


@dataclass
class ConnRuntime:
    """A loaded CoNN: call :meth:`run` with token sequences, get decoded outputs back."""

    spec: ConnSpec
    weights: dict[str, np.ndarray]
    _forward: Callable[..., Any] | None = field(default=None, repr=False)

    @classmethod
    def from_model(cls, model: Any, max_seq_len: int, causal: bool = False, *, sharpen: bool = True) -> "ConnRuntime":
        spec, weights = extract(model, max_seq_len, causal, sharpen=sharpen)
        return cls(spec, weights)

    @classmethod
    def load(cls, weights_path: str | Path, spec: ConnSpec) -> "ConnRuntime":
        check_weights_file(weights_path, spec)  # shapes, dtype and budget, before anything is decompressed
        with np.load(weights_path) as archive:
            weights = {name: archive[name] for name in archive.files}
        return cls(spec, weights)

    def save_weights(self, path: str | Path) -> None:
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **self.weights)

    @property
    def parameters(self) -> int:
        return sum(int(a.size) for name, a in self.weights.items() if name != "unembed")

    def encode(self, inputs: Sequence[Sequence[Token]]) -> np.ndarray:
        """Token ids [N, max_seq_len+1]: BOS, the tokens, then PAD. Raises ConnInputError."""
        table = self.spec.input_encoding
        width = self.spec.max_seq_len + 1
        pad = table[self.spec.pad_token]
        ids = np.full((len(inputs), width), pad, dtype=np.int32)
        ids[:, 0] = table[self.spec.bos_token]
        for row, sequence in enumerate(inputs):
            if len(sequence) > self.spec.max_seq_len:
                raise ConnInputError(f"input {row} has {len(sequence)} tokens; this CoNN takes at most {self.spec.max_seq_len}")
            if len(sequence) == 0:
                raise ConnInputError(f"input {row} is empty; give at least one token")
            for col, token in enumerate(sequence, start=1):
                index = _lookup(table, token)
                if index is None or token in (self.spec.bos_token, self.spec.pad_token):
                    raise ConnInputError(f"token {token!r} (input {row}, position {col - 1}) is not in this CoNN's vocab {self.spec.vocab}")
                ids[row, col] = index
        return ids

    def run(self, inputs: Sequence[Sequence[Token]]) -> list[list[Value]]:
        """Decoded outputs for each input (one value per input position)."""
        if self._forward is None:
            self._forward = _make_forward(self.spec, self.weights)
        ids = self.encode(inputs)
        raw = np.concatenate([np.asarray(self._forward(chunk))
                              for chunk in _fixed_batches(ids)]) if len(ids) else np.zeros((0, ids.shape[1]))
        return [self._decode(raw[row, 1:1 + len(sequence)]) for row, sequence in enumerate(inputs)]

    def _decode(self, row: np.ndarray) -> list[Value]:
        if self.spec.output_kind == "categorical":
            decoding = self.spec.output_decoding
            return [decoding[int(i)] for i in row]
        return [float(v) for v in row]


def _lookup(table: dict[Token, int], token: Token) -> int | None:
    """Vocab lookup that keeps True and 1 apart (they hash alike in Python)."""
    index = table.get(token)
    if index is None:
        return None
    for key in table:
        if key == token and type(key) is type(token):
            return table[key]
    return None


def _fixed_batches(ids: np.ndarray) -> Iterable[np.ndarray]:
    """Yields chunks padded to one of BATCH_BUCKETS rows so the jitted forward never re-traces
    for a new batch size."""
    largest = BATCH_BUCKETS[-1]
    for start in range(0, len(ids), largest):
        chunk = ids[start:start + largest]
        size = next(b for b in BATCH_BUCKETS if b >= len(chunk))
        if size > len(chunk):
            filler = np.repeat(chunk[:1], size - len(chunk), axis=0)
            chunk = np.concatenate([chunk, filler])
        yield chunk  # filler rows only ever trail the real ones; run() reads rows 0..N-1
