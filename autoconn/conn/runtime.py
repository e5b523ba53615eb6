"""Run a compiled CoNN on many inputs at once: one forward pass over padded batches.

tracr's own ``model.apply`` runs one input at a time (~0.1-0.5 s each) and never sets its pad
token, so padded positions are attended like real ones. This runtime re-implements the
same forward pass from the weights alone (no recompiling, no haiku) and masks padded keys,
in two interchangeable backends with the same layer plan and the same float32 arithmetic:

- ``jax``: one jitted forward over fixed padded batch shapes (each shape is traced once,
  0.2-0.3 s); the fastest for large batches in a long-lived process.
- ``numpy``: the same operations in numpy; it never imports jax (1.3-2 s to import on
  these machines), so a one-shot ``autoconn run`` answers in a fraction of a second.

``backend="auto"`` (the default) takes numpy unless the batch is large enough to pay for
importing jax and tracing (see :func:`choose_backend`). Encoding and decoding are
vectorised (one C-level pass over the tokens, numpy lookups), so the end-to-end rate is
close to the forward pass alone.
"""

from __future__ import annotations

import gc
import io
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np

from autoconn.conn.weights_check import check_weights_file
from autoconn.task import Token, Value

BATCH_BUCKETS = (1, 8, 64, 512)
BACKENDS = ("auto", "jax", "numpy")
# auto: numpy for batches up to this many inputs when jax is not imported yet. Importing jax and
# tracing costs ~2 s here; numpy's forward runs 6-30k inputs/s on an idle 2-core machine but
# drops to ~1k/s when the cores are contended (OpenBLAS threads spin), so the limit keeps the
# numpy path under ~1 s even then. Larger batches, and any process that already has jax, go to jax.
NUMPY_MAX_INPUTS_COLD = 1024
# auto with jax already imported: numpy still wins on tiny batches (no trace, no dispatch).
NUMPY_MAX_INPUTS_WARM = 8


class ConnInputError(ValueError):
    """An input the CoNN cannot take: a token outside its vocab or a sequence too long.
    ``row`` is the index of the offending input in the batch (None when not known)."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


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
    def from_json(cls, data: dict[str, Any]) -> ConnSpec:
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

    def unembed(x: Any) -> Any:
        return model.get_compiled_model().unembed(x, use_unembed_argmax=False)

    matrix = np.asarray(hk.transform(unembed).apply({}, None, jnp.eye(width)))  # no parameters, no rng
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


def extract(model: Any, max_seq_len: int, causal: bool = False, *,
            sharpen: bool = True) -> tuple[ConnSpec, dict[str, np.ndarray]]:
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


def _layer_plan(spec: ConnSpec, weights: Mapping[str, np.ndarray]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The non-empty sublayers, in order, with all-zero MLP hidden units removed.

    tracr pads every layer to the widest MLP and zeroes the sublayers a program does not use;
    dropping those is exact (they add 0 to the residual) and saves most of the arithmetic.
    An empty attention sublayer's query/key/value arrays are never read (with lazily loaded
    weights they are never decompressed)."""
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


def forward_flops(spec: ConnSpec, weights: Mapping[str, np.ndarray], length: int | None = None) -> int:
    """Multiply-adds x2 of one input's forward pass as this runtime executes it (the layer plan,
    at the padded length max_seq_len+1 by default): projections, attention scores and mixing,
    MLPs and the unembedding. Embedding lookups, softmax and argmax are not counted."""
    t = (spec.max_seq_len + 1) if length is None else length
    width = int(weights["token_embed/embeddings"].shape[1])
    flops = 0
    for kind, p in _layer_plan(spec, weights):
        if kind == "attn":
            inner = int(p["query/w"].shape[1])
            flops += 2 * t * width * inner * 3  # q, k, v
            flops += 2 * 2 * t * t * inner  # scores and mixing, all heads
            flops += 2 * t * inner * width  # output projection
        else:
            hidden = int(p["w1"].shape[1])
            flops += 2 * 2 * t * width * hidden
    flops += 2 * t * width * int(weights["unembed"].shape[1])
    return flops


class _Layers:
    """What both backends compute from: the layer plan plus embeddings, built once."""

    def __init__(self, spec: ConnSpec, weights: Mapping[str, np.ndarray]) -> None:
        # float32 throughout, as jax computes it (it would narrow float64 weights itself)
        self.plan = [(kind, {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in params.items()})
                     for kind, params in _layer_plan(spec, weights)]
        self.token_embed = np.asarray(weights["token_embed/embeddings"], dtype=np.float32)
        self.pos_embed = np.asarray(weights["pos_embed/embeddings"], dtype=np.float32)
        self.unembed = np.asarray(weights["unembed"], dtype=np.float32)
        self.heads, self.key_size = spec.num_heads, spec.key_size
        self.pad_id = spec.input_encoding[spec.pad_token]
        self.scale = np.float32(math.sqrt(spec.key_size))
        self.causal = spec.causal
        self.categorical = spec.output_kind == "categorical"


def _make_forward(layers: _Layers) -> Callable[[Any], Any]:
    """The compiled transformer's forward pass in JAX (tracr's model.py semantics, pad keys masked).

    The weights are closed over as constants rather than passed as arguments (XLA folds them;
    measured twice as fast here) and empty sublayers are skipped (see _layer_plan)."""
    import jax
    import jax.numpy as jnp

    plan = [(kind, {name: jnp.asarray(a) for name, a in params.items()}) for kind, params in layers.plan]
    token_embed, pos_embed, unembed = (jnp.asarray(a) for a in (layers.token_embed, layers.pos_embed, layers.unembed))
    heads, key_size, pad_id, scale = layers.heads, layers.key_size, layers.pad_id, layers.scale

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
        if layers.causal:
            mask = mask & jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]
        for kind, p in plan:
            if kind == "attn":
                x = x + attention(x, p, mask)
            else:
                x = x + jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        out = x @ unembed
        if layers.categorical:
            return jnp.argmax(out, axis=-1)
        return out[..., 0]

    return jax.jit(forward)


def _make_numpy_forward(layers: _Layers) -> Callable[[np.ndarray], np.ndarray]:
    """The same forward pass as :func:`_make_forward`, operation for operation, in numpy float32
    (never imports jax). Matrix products run on 2-D [batch*length, width] arrays (one BLAS call
    each); attention uses batched matmuls over [batch, heads, length, key_size]."""
    plan = layers.plan
    heads, key_size, pad_id, scale = layers.heads, layers.key_size, layers.pad_id, layers.scale
    token_embed, pos_embed, unembed = layers.token_embed, layers.pos_embed, layers.unembed
    masked = np.float32(-1e30)

    def attention(x: np.ndarray, p: dict[str, np.ndarray], mask: np.ndarray, batch: int, length: int) -> np.ndarray:
        def split(a: np.ndarray) -> np.ndarray:  # [B*T, H*d] -> [B, H, T, d]
            return a.reshape(batch, length, heads, key_size).transpose(0, 2, 1, 3)

        q = split(x @ p["query/w"] + p["query/b"])
        k = split(x @ p["key/w"] + p["key/b"])
        v = split(x @ p["value/w"] + p["value/b"])
        logits = np.where(mask, (q @ k.transpose(0, 1, 3, 2)) / scale, masked)
        logits = np.exp(logits - logits.max(axis=-1, keepdims=True))
        weights = logits / logits.sum(axis=-1, keepdims=True)
        mixed = (weights @ v).transpose(0, 2, 1, 3).reshape(batch * length, heads * key_size)
        return mixed @ p["linear/w"] + p["linear/b"]

    def forward(tokens: np.ndarray) -> np.ndarray:
        batch, length = tokens.shape
        x = (token_embed[tokens] + pos_embed[:length][None]).reshape(batch * length, -1)
        mask = (tokens != pad_id)[:, None, None, :]
        if layers.causal:
            mask = mask & np.tril(np.ones((length, length), dtype=bool))[None, None]
        for kind, p in plan:
            if kind == "attn":
                x = x + attention(x, p, mask, batch, length)
            else:
                x = x + np.maximum(x @ p["w1"] + p["b1"], np.float32(0)) @ p["w2"] + p["b2"]
        out = (x @ unembed).reshape(batch, length, -1)
        if layers.categorical:
            return np.argmax(out, axis=-1)
        return out[..., 0]

    return forward


class _OneBlasThread:
    """Runs numpy's matrix products on the calling thread only, for the duration of a block.

    The numpy path serves small batches, where OpenBLAS's second thread brings nothing and
    costs a great deal when the cores are busy: right after jitted work, XLA's worker threads
    still spin, and a one-input forward of reverse (L=32) took ~100 ms instead of ~1.5 ms
    (measured). Uses OpenBLAS's per-thread setting (openblas_set_num_threads_local, OpenBLAS
    >= 0.3.27) on the library numpy has loaded, restoring it afterwards; a no-op elsewhere."""

    _setter: Any = None
    _looked = False

    @classmethod
    def _find(cls) -> Any:
        if not cls._looked:
            cls._looked = True
            try:
                import ctypes

                with open("/proc/self/maps", encoding="utf-8") as maps:
                    paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
                for path in sorted(paths):
                    library = ctypes.CDLL(path)
                    setter = getattr(library, "openblas_set_num_threads_local", None)
                    if setter is not None:
                        setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                        cls._setter = setter
                        break
            except Exception:  # noqa: BLE001 - not Linux, not OpenBLAS: leave threading alone
                cls._setter = None
        return cls._setter

    def __enter__(self) -> None:
        setter = self._find()
        self.previous = setter(1) if setter is not None else None

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            self._setter(self.previous)


def choose_backend(count: int, backend: str = "auto") -> str:
    """Which forward runs a batch of `count` inputs (see NUMPY_MAX_INPUTS_*)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend != "auto":
        return backend
    limit = NUMPY_MAX_INPUTS_WARM if "jax" in sys.modules else NUMPY_MAX_INPUTS_COLD
    return "numpy" if count <= limit else "jax"


class _LazyWeights(Mapping[str, np.ndarray]):
    """An .npz archive read one array at a time, on first use: opening it reads the file's
    (compressed) bytes and the zip directory only, and an array the forward pass never needs is
    never decompressed. Every array comes from the bytes read at open, so a file replaced later
    cannot mix into a loaded runtime."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._archive = np.load(io.BytesIO(self.path.read_bytes()))  # allow_pickle stays False
        self._names = list(self._archive.files)
        self._loaded: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._loaded:
            if name not in self._names:
                raise KeyError(name)
            self._loaded[name] = self._archive[name]
            if len(self._loaded) == len(self._names):
                self._archive.close()
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@dataclass
class ConnRuntime:
    """A loaded CoNN: call :meth:`run` with token sequences, get decoded outputs back."""

    spec: ConnSpec
    weights: Mapping[str, np.ndarray]
    _forward: Callable[..., Any] | None = field(default=None, repr=False)
    _numpy_forward: Callable[..., Any] | None = field(default=None, repr=False)
    _layers: _Layers | None = field(default=None, repr=False)
    _codec: _Codec | None = field(default=None, repr=False)

    @classmethod
    def from_model(cls, model: Any, max_seq_len: int, causal: bool = False, *, sharpen: bool = True) -> ConnRuntime:
        spec, weights = extract(model, max_seq_len, causal, sharpen=sharpen)
        return cls(spec, weights)

    @classmethod
    def load(cls, weights_path: str | os.PathLike[str], spec: ConnSpec) -> ConnRuntime:
        """Opens stored weights once their shapes, dtype and total size match the spec (read from the
        zip directory and array headers, before anything is decompressed); arrays are decompressed
        when the forward pass first needs them."""
        check_weights_file(weights_path, spec)
        return cls(spec, _LazyWeights(weights_path))

    def save_weights(self, path: str | Path) -> None:
        with open(path, "wb") as handle:
            # Any: numpy's stub types **kwds against savez's allow_pickle flag too
            arrays: dict[str, Any] = {name: self.weights[name] for name in self.weights}
            np.savez_compressed(handle, **arrays)

    @property
    def parameters(self) -> int:
        return sum(int(self.weights[name].size) for name in self.weights if name != "unembed")

    @property
    def flops_per_input(self) -> int:
        """See :func:`forward_flops` (at the padded length this runtime runs)."""
        return forward_flops(self.spec, self.weights)

    def _get_layers(self) -> _Layers:
        if self._layers is None:
            self._layers = _Layers(self.spec, self.weights)
        return self._layers

    def _get_codec(self) -> _Codec:
        if self._codec is None:
            self._codec = _Codec(self.spec)
        return self._codec

    def encode(self, inputs: Sequence[Sequence[Token]]) -> np.ndarray:
        """Token ids [N, max_seq_len+1]: BOS, the tokens, then PAD. Raises ConnInputError."""
        return self._get_codec().encode(inputs)[0]

    def forward(self, ids: np.ndarray, backend: str = "auto") -> np.ndarray:
        """Raw outputs for encoded ids [N, max_seq_len+1]: argmax ids (categorical) or values."""
        if len(ids) == 0:
            return np.zeros(ids.shape, dtype=np.int64 if self.spec.output_kind == "categorical" else np.float32)
        if choose_backend(len(ids), backend) == "numpy":
            if self._numpy_forward is None:
                self._numpy_forward = _make_numpy_forward(self._get_layers())
            forward = self._numpy_forward
            largest = BATCH_BUCKETS[-1]  # bounded memory; numpy takes any batch size as is
            with _OneBlasThread():
                if len(ids) <= largest:
                    return forward(ids)
                return np.concatenate([forward(ids[start:start + largest]) for start in range(0, len(ids), largest)])
        return np.concatenate([np.asarray(out)[:real] for out, real in self._dispatch(ids)])

    def _dispatch(self, ids: np.ndarray) -> list[tuple[Any, int]]:
        """Queues every fixed-size chunk on the jitted forward at once (jax computes them in the
        background) and returns (pending output, real rows) per chunk."""
        if self._forward is None:
            self._forward = _make_forward(self._get_layers())
        return [(self._forward(chunk), real) for chunk, real in _fixed_batches(ids)]

    def run(self, inputs: Sequence[Sequence[Token]], *, backend: str = "auto") -> list[list[Value]]:
        """Decoded outputs for each input (one value per input position)."""
        codec = self._get_codec()
        ids, lengths = codec.encode(inputs)
        # (decoding chunk by chunk while later chunks compute measured no faster on 2 cores)
        return codec.decode(self.forward(ids, backend), lengths)


def prepare_threading() -> None:
    """Looks up the BLAS thread setting now rather than on the first forward pass (the sandbox
    worker calls it before any job, so no job's integrity check sees the lookup happen)."""
    _OneBlasThread._find()


class _Codec:
    """Vectorised encode/decode: one C-level pass over all tokens, numpy lookups, no Python
    per token. Any input that fails the fast path is re-checked by the reference loop
    (:func:`_encode_reference`), which raises the same error for the same first bad input."""

    def __init__(self, spec: ConnSpec) -> None:
        self.spec = spec
        reserved = (spec.bos_token, spec.pad_token)
        # bos/pad are not input tokens; compare by type too, so True is not taken for 1
        self.table = {t: i for t, i in spec.input_encoding.items() if not any(t == r and type(t) is type(r) for r in reserved)}
        self.types = {type(t) for t in self.table}
        self.typed = {(type(t), t): i for t, i in self.table.items()}
        self.width = spec.max_seq_len + 1
        self.pad = spec.input_encoding[spec.pad_token]
        self.bos = spec.input_encoding[spec.bos_token]
        self.categorical = spec.output_kind == "categorical"
        values = spec.output_decoding
        ints = [v for v in values if type(v) is int]
        if values and len(ints) == len(values) and all(abs(v) < 2 ** 62 for v in ints):
            self.decoding = np.array(values, dtype=np.int64)  # tolist() gives back the same Python ints
        else:
            self.decoding = np.empty(len(values), dtype=object)
            for index, value in enumerate(values):
                self.decoding[index] = value

    def encode(self, inputs: Sequence[Sequence[Token]]) -> tuple[np.ndarray, np.ndarray]:
        count = len(inputs)
        try:
            lengths = np.fromiter(map(len, inputs), dtype=np.int64, count=count)
        except TypeError:
            return _encode_reference(self.spec, inputs)
        if count and (lengths.max() > self.spec.max_seq_len or lengths.min() == 0):
            return _encode_reference(self.spec, inputs)
        total = int(lengths.sum())
        flat = list(chain.from_iterable(inputs))
        try:
            kinds = set(map(type, flat))
            if len(self.types) == 1 and kinds == self.types:  # one type: plain dict lookups are exact
                found = np.fromiter(map(self.table.get, flat, repeat(-1)), dtype=np.int64, count=total)
            else:
                found = np.fromiter(map(self.typed.get, zip(map(type, flat), flat), repeat(-1)), dtype=np.int64, count=total)
        except (TypeError, ValueError):  # unhashable or odd tokens: the reference loop says what is wrong
            return _encode_reference(self.spec, inputs)
        if len(flat) != total or (total and found.min() < 0):
            return _encode_reference(self.spec, inputs)
        ids = np.full((count, self.width), self.pad, dtype=np.int32)
        ids[:, 0] = self.bos
        ids[:, 1:][np.arange(self.spec.max_seq_len)[None, :] < lengths[:, None]] = found
        return ids, lengths

    def decode(self, raw: np.ndarray, lengths: np.ndarray) -> list[list[Value]]:
        """Rows of decoded values: one numpy lookup over the real positions, one tolist(), then
        one slice per input (the garbage collector is paused meanwhile: the new lists hold no
        cycles, and a full collection over a large heap would cost more than the decoding)."""
        body = raw[:, 1:]
        real = body[np.arange(body.shape[1])[None, :] < lengths[:, None]]
        flat = (self.decoding[real] if self.categorical else real).tolist()
        ends = np.cumsum(lengths).tolist()
        enabled = gc.isenabled()
        gc.disable()
        try:
            return [flat[start:end] for start, end in zip([0, *ends[:-1]], ends)]
        finally:
            if enabled:
                gc.enable()


def _encode_reference(spec: ConnSpec, inputs: Sequence[Sequence[Token]]) -> tuple[np.ndarray, np.ndarray]:
    """Token by token, in input order: the first problem found raises ConnInputError."""
    table = spec.input_encoding
    width = spec.max_seq_len + 1
    pad = table[spec.pad_token]
    ids = np.full((len(inputs), width), pad, dtype=np.int32)
    ids[:, 0] = table[spec.bos_token]
    lengths = np.zeros(len(inputs), dtype=np.int64)
    for row, sequence in enumerate(inputs):
        if len(sequence) > spec.max_seq_len:
            raise ConnInputError(f"input {row} has {len(sequence)} tokens; this CoNN takes at most {spec.max_seq_len}", row)
        if len(sequence) == 0:
            raise ConnInputError(f"input {row} is empty; give at least one token", row)
        lengths[row] = len(sequence)
        for col, token in enumerate(sequence, start=1):
            index = _lookup(table, token)
            if index is None or any(token == r and type(token) is type(r) for r in (spec.bos_token, spec.pad_token)):
                raise ConnInputError(f"token {token!r} (input {row}, position {col - 1}) "
                                     f"is not in this CoNN's vocab {spec.vocab}", row)
            ids[row, col] = index
    return ids, lengths


def _lookup(table: dict[Token, int], token: Token) -> int | None:
    """Vocab lookup that keeps True and 1 apart (they hash alike in Python); an unhashable
    token is simply not in the vocab."""
    try:
        index = table.get(token)
    except TypeError:
        return None
    if index is None:
        return None
    for key in table:
        if key == token and type(key) is type(token):
            return table[key]
    return None


def _fixed_batches(ids: np.ndarray) -> Iterable[tuple[np.ndarray, int]]:
    """Yields (chunk, real rows): chunks padded to one of BATCH_BUCKETS rows so the jitted forward
    never re-traces for a new batch size. A remainder is padded up to the next bucket when at most
    half of it would be filler, else split over the smaller buckets (300 rows: 4 x 64, then 44
    padded to 64). Filler rows copy the chunk's first row and only ever trail the real ones."""
    largest = BATCH_BUCKETS[-1]
    start = 0
    while start < len(ids):
        left = len(ids) - start
        fits = [b for b in BATCH_BUCKETS if b <= left]
        size = fits[-1] if fits else BATCH_BUCKETS[0]
        if size < largest:
            upper = next(b for b in BATCH_BUCKETS if b >= left)
            if (upper - left) * 2 <= upper:
                size = upper
        chunk = ids[start:start + size]
        real = len(chunk)
        if size > real:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], size - real, axis=0)])
        start += real
        yield chunk, real
