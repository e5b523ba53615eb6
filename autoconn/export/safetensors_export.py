"""``autoconn export NAME --to DIR``: the library's weights as ``model.safetensors`` plus a
``config.json`` anyone can read, and ``conn_numpy.py`` (numpy only) to run them.

The tensors are exactly what ``ConnRuntime`` computes with: the ``weights.npz`` stored in the
library, under the same names (tracr's haiku module paths, e.g. ``transformer/layer_0/attn/query/w``,
plus ``unembed``). Their query weights already carry the runtime's sqrt(d_head) sharpening when
the entry was registered with it (``architecture.query_scale`` says which); a consumer divides
attention logits by sqrt(d_head) as usual and masks PAD keys.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from autoconn.conn.artifact import WEIGHTS_FILE, Library, LibraryEntry
from autoconn.review.verified import verified_summary

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
LOADER_FILE = "conn_numpy.py"


def load_weights(entry: LibraryEntry) -> dict[str, np.ndarray]:
    path = entry.path / WEIGHTS_FILE
    with np.load(path) as archive:
        return {name: np.asarray(archive[name], dtype=np.float32) for name in archive.files}


def query_scale(entry: LibraryEntry, weights: dict[str, np.ndarray]) -> float:
    """The factor the stored query weights were multiplied by (sqrt(key_size) when sharpened, 1
    for entries registered before sharpening: tracr's own query weights are built from integer
    and exactness-scaled values, sharpened ones are not — the compiler settings say which)."""
    settings = entry.meta.get("compiler") or {}
    sharpened = settings.get("sharpen_attention")
    if sharpened is None:  # older conn.json: tell by the weights (tracr's queries peak at whole numbers)
        peaks = [float(np.abs(a).max()) for n, a in weights.items() if n.endswith("/attn/query/w") and a.any()]
        sharpened = bool(peaks) and any(abs(p - round(p)) > 1e-3 for p in peaks)
    return math.sqrt(entry.spec.key_size) if sharpened else 1.0


def build_config(entry: LibraryEntry, weights: dict[str, np.ndarray]) -> dict[str, Any]:
    spec, meta = entry.spec, entry.meta
    verified = verified_summary(meta)
    d_model = int(weights["token_embed/embeddings"].shape[1])
    return {
        "format": "autoconn-conn",
        "format_version": 1,
        "name": entry.name,
        "description": meta.get("description", ""),
        "architecture": {
            "n_layers": spec.num_layers,
            "n_heads": spec.num_heads,
            "d_model": d_model,
            "d_head": spec.key_size,
            "d_mlp": spec.mlp_hidden,
            "n_ctx": spec.max_seq_len + 1,
            "d_vocab": len(spec.input_encoding),
            "d_vocab_out": int(weights["unembed"].shape[1]),
            "activation": "relu",
            "normalization": None,
            "attention": "causal" if spec.causal else "bidirectional",
            "attn_scale": math.sqrt(spec.key_size),
            "query_scale": query_scale(entry, weights),
            "query_scale_from": "compiler settings" if (meta.get("compiler") or {}).get("sharpen_attention") is not None
                                else "the weights (conn.json predates the setting)",
            "mask_pad_keys": True,
            "block": "x += attn(x); x += mlp(x)  (no layer norm); logits = x @ unembed",
        },
        "input_encoding": [[token, index] for token, index in spec.input_encoding.items()],
        "bos_token": spec.bos_token,
        "pad_token": spec.pad_token,
        "output": {"kind": spec.output_kind, "shape": meta.get("output_shape"), "decoding": list(spec.output_decoding)},
        "max_seq_len": spec.max_seq_len,
        "verified_length": verified["length"],
        "verified_how": verified["how"],
        "compiler": meta.get("compiler"),
        "parameters": sum(int(a.size) for n, a in weights.items() if n != "unembed"),
        "source_sha256": meta.get("source_sha256"),
        "usage": "BOS first, then the tokens; position 0 is BOS and its output is meaningless. Inputs longer than "
                 "verified_length were not proven (the CoNN refuses them in autoconn).",
    }


def write_safetensors(weights: dict[str, np.ndarray], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.numpy import save_file

    save_file({name: np.ascontiguousarray(a, dtype=np.float32) for name, a in weights.items()}, str(path), metadata=metadata)


def export_safetensors(name: str, out_dir: str | Path, library: str | Path = "generated_conns") -> Path:
    """Writes model.safetensors, config.json and conn_numpy.py into out_dir; returns out_dir."""
    entry = Library(library).get(name)
    weights = load_weights(entry)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = build_config(entry, weights)
    write_safetensors(weights, out / MODEL_FILE, {"format": "autoconn-conn", "name": name})
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")
    shutil.copyfile(Path(__file__).with_name("numpy_model.py"), out / LOADER_FILE)
    return out
