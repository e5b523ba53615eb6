"""Run an exported CoNN (``model.safetensors`` + ``config.json``) with numpy alone.

This file has no imports besides numpy and the standard library: ``autoconn export`` copies it
into the export folder as ``conn_numpy.py``, so the folder runs anywhere numpy does::

    from conn_numpy import load
    conn = load("exported/reverse")
    conn.run([["a", "b", "c"]])          # -> [["c", "b", "a"]]
    logits, cache = conn.forward(conn.encode([["a", "b"]]), collect=True)

The forward pass is tracr's compiled transformer exactly as AutoCoNN's runtime computes it:
embeddings (token + position), then per layer ``x += attn(x); x += mlp(x)`` (no layer norm,
ReLU MLPs), attention logits ``q·k / sqrt(d_head)`` with padded keys masked out, and
``x @ unembed`` at the end (argmax for categorical outputs, the single column for numerical
ones). The query weights in the file are already multiplied by sqrt(d_head) (config
``architecture.query_scale``): tracr builds its heads at the intended softness but the assembled
model divides by sqrt(d_head); the stored queries undo that, as the runtime does.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """The safetensors format read with numpy: 8 bytes of header length, a JSON header, raw data."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = memoryview(data)[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = array.copy()
    return tensors


def _token_key(token: Any) -> tuple[str, Any]:
    """True and 1 hash alike in Python: key the vocabulary by type too."""
    return (type(token).__name__, token)


class NumpyConn:
    """A loaded CoNN: encode tokens, run the forward pass, decode outputs."""

    def __init__(self, config: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        self.config = config
        self.weights = {name: np.asarray(array, dtype=np.float32) for name, array in weights.items()}
        arch = config["architecture"]
        self.n_layers, self.n_heads, self.d_head = int(arch["n_layers"]), int(arch["n_heads"]), int(arch["d_head"])
        self.causal = arch.get("attention") == "causal"
        self.encoding = {_token_key(token): int(index) for token, index in config["input_encoding"]}
        self.bos, self.pad = config["bos_token"], config["pad_token"]
        self.max_seq_len = int(config["max_seq_len"])
        self.output_kind = config["output"]["kind"]
        self.decoding = list(config["output"]["decoding"])

    @property
    def vocab(self) -> list[Any]:
        return [token for token, _ in self.config["input_encoding"] if token not in (self.bos, self.pad)]

    def encode(self, inputs: Sequence[Sequence[Any]], width: int | None = None) -> np.ndarray:
        """Token ids [N, width]: BOS, the tokens, then PAD (width: the longest input + 1 by default)."""
        longest = max((len(seq) for seq in inputs), default=0)
        width = width or longest + 1
        ids = np.full((len(inputs), width), self.encoding[_token_key(self.pad)], dtype=np.int64)
        ids[:, 0] = self.encoding[_token_key(self.bos)]
        for row, seq in enumerate(inputs):
            if not 0 < len(seq) <= self.max_seq_len:
                raise ValueError(f"input {row} has {len(seq)} tokens; this CoNN takes 1 to {self.max_seq_len}")
            for col, token in enumerate(seq, start=1):
                key = _token_key(token)
                if key not in self.encoding or token in (self.bos, self.pad):
                    raise ValueError(f"token {token!r} (input {row}) is not in the vocab {self.vocab}")
                ids[row, col] = self.encoding[key]
        return ids

    def forward(self, ids: np.ndarray, collect: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits [N, T, outputs] for token ids [N, T]; with ``collect`` also the residual stream
        after the embedding and after every sublayer, and every attention pattern [N, heads, T, T]."""
        w = self.weights
        ids = np.asarray(ids)
        batch, length = ids.shape
        x = w["token_embed/embeddings"][ids] + w["pos_embed/embeddings"][np.arange(length)][None]
        mask = (ids != self.encoding[_token_key(self.pad)])[:, None, None, :]
        if self.causal:
            mask = mask & np.tril(np.ones((length, length), dtype=bool))[None, None]
        scale = np.float32(math.sqrt(self.d_head))
        cache: dict[str, np.ndarray] = {}
        if collect:
            cache["embed"] = x.copy()
        for layer in range(self.n_layers):
            a = f"transformer/layer_{layer}/attn"
            shape = (batch, length, self.n_heads, self.d_head)
            q = (x @ w[f"{a}/query/w"] + w[f"{a}/query/b"]).reshape(shape)
            k = (x @ w[f"{a}/key/w"] + w[f"{a}/key/b"]).reshape(shape)
            v = (x @ w[f"{a}/value/w"] + w[f"{a}/value/b"]).reshape(shape)
            scores = np.where(mask, np.einsum("bthd,bThd->bhtT", q, k) / scale, np.float32(-1e30))
            scores = scores - scores.max(axis=-1, keepdims=True)
            pattern = np.exp(scores)
            pattern = pattern / pattern.sum(axis=-1, keepdims=True)
            mixed = np.einsum("bhtT,bThd->bthd", pattern, v).reshape(batch, length, self.n_heads * self.d_head)
            x = x + (mixed @ w[f"{a}/linear/w"] + w[f"{a}/linear/b"])
            if collect:
                cache[f"layer_{layer}/attn/pattern"] = pattern
                cache[f"layer_{layer}/attn/resid"] = x.copy()
            m = f"transformer/layer_{layer}/mlp"
            hidden = np.maximum(x @ w[f"{m}/linear_1/w"] + w[f"{m}/linear_1/b"], 0)
            x = x + (hidden @ w[f"{m}/linear_2/w"] + w[f"{m}/linear_2/b"])
            if collect:
                cache[f"layer_{layer}/mlp/resid"] = x.copy()
        return (x @ w["unembed"]).astype(np.float32), cache

    def decode(self, logits: np.ndarray, inputs: Sequence[Sequence[Any]]) -> list[list[Any]]:
        if self.output_kind == "categorical":
            best = logits.argmax(axis=-1)
            return [[self.decoding[int(i)] for i in best[row, 1:1 + len(seq)]] for row, seq in enumerate(inputs)]
        return [[float(v) for v in logits[row, 1:1 + len(seq), 0]] for row, seq in enumerate(inputs)]

    def run(self, inputs: Sequence[Sequence[Any]], batch_size: int = 256) -> list[list[Any]]:
        """Decoded outputs, one value per input position."""
        outputs: list[list[Any]] = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start:start + batch_size]
            logits, _ = self.forward(self.encode(chunk))
            outputs.extend(self.decode(logits, chunk))
        return outputs


def load(directory: str | Path) -> NumpyConn:
    """Loads an export folder written by ``autoconn export NAME --to DIR``."""
    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    return NumpyConn(config, read_safetensors(directory / "model.safetensors"))
