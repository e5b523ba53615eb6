"""``autoconn export NAME --to DIR --format transformer-lens``: the same weights laid out for
TransformerLens's ``HookedTransformer``, and ``load_hooked(DIR)`` to build it.

The layout follows TransformerLens's own tracr demo (Tracr_to_Transformer_Lens_Demo) and
InterpBench's ``HookedTracrTransformer``: haiku's ``query/w`` [d_model, heads*d_head] becomes
``W_Q`` [heads, d_model, d_head], ``linear/w`` [heads*d_head, d_model] becomes ``W_O``
[heads, d_head, d_model], MLPs are ``W_in``/``W_out`` with ReLU, no layer norm, ``unembed`` is
``W_U`` with a zero ``b_U``. One difference from those two: the queries here are the runtime's,
multiplied by sqrt(d_head) (tracr's assembled model divides by sqrt(d_head) and never compensates,
see DESIGN.md "Attention too soft"); HookedTransformer's default ``attn_scale`` = sqrt(d_head)
then gives exactly AutoCoNN's numbers. Padded keys: run each length as its own batch
(``run_hooked`` does), so no PAD is ever attended.

Needs the ``export`` extra: ``pip install -e '.[export]'`` (torch 2.13.0, transformer-lens 3.9.0;
TransformerLens 4 removed HookedTransformer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autoconn.export.numpy_model import NumpyConn, read_safetensors
from autoconn.export.safetensors_export import CONFIG_FILE, export_safetensors, write_safetensors

TL_MODEL_FILE = "hooked_transformer.safetensors"
TL_CONFIG_FILE = "hooked_transformer_config.json"


def hooked_config(config: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for HookedTransformerConfig."""
    arch = config["architecture"]
    return {
        "n_layers": arch["n_layers"], "d_model": arch["d_model"], "d_head": arch["d_head"], "n_heads": arch["n_heads"],
        "d_mlp": arch["d_mlp"], "d_vocab": arch["d_vocab"], "d_vocab_out": arch["d_vocab_out"], "n_ctx": arch["n_ctx"],
        "act_fn": "relu", "normalization_type": None, "attention_dir": arch["attention"],
        "positional_embedding_type": "standard", "default_prepend_bos": False, "use_attn_scale": True,
        "attn_scale": float(arch["attn_scale"]), "model_name": f"autoconn-{config['name']}", "dtype": "float32",
        "seed": 0, "init_weights": False,
    }


def hooked_state_dict(config: dict[str, Any], weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """tracr/haiku tensor names -> HookedTransformer state-dict names and shapes."""
    arch = config["architecture"]
    heads, d_head, d_model = arch["n_heads"], arch["d_head"], arch["d_model"]
    state = {
        "embed.W_E": weights["token_embed/embeddings"],
        "pos_embed.W_pos": weights["pos_embed/embeddings"],
        "unembed.W_U": weights["unembed"],
        "unembed.b_U": np.zeros(weights["unembed"].shape[1], dtype=np.float32),
    }
    for layer in range(arch["n_layers"]):
        a, m, b = f"transformer/layer_{layer}/attn", f"transformer/layer_{layer}/mlp", f"blocks.{layer}"
        for part, letter in (("query", "Q"), ("key", "K"), ("value", "V")):
            state[f"{b}.attn.W_{letter}"] = weights[f"{a}/{part}/w"].reshape(d_model, heads, d_head).transpose(1, 0, 2)
            state[f"{b}.attn.b_{letter}"] = weights[f"{a}/{part}/b"].reshape(heads, d_head)
        state[f"{b}.attn.W_O"] = weights[f"{a}/linear/w"].reshape(heads, d_head, d_model)
        state[f"{b}.attn.b_O"] = weights[f"{a}/linear/b"]
        state[f"{b}.mlp.W_in"] = weights[f"{m}/linear_1/w"]
        state[f"{b}.mlp.b_in"] = weights[f"{m}/linear_1/b"]
        state[f"{b}.mlp.W_out"] = weights[f"{m}/linear_2/w"]
        state[f"{b}.mlp.b_out"] = weights[f"{m}/linear_2/b"]
    return {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in state.items()}


def export_transformer_lens(name: str, out_dir: str | Path, library: str | Path = "generated_conns") -> Path:
    """The safetensors export plus hooked_transformer.safetensors and its config (no torch needed to write)."""
    out = export_safetensors(name, out_dir, library)
    config = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    weights = read_safetensors(out / "model.safetensors")
    write_safetensors(hooked_state_dict(config, weights), out / TL_MODEL_FILE, {"format": "transformer-lens", "name": name})
    (out / TL_CONFIG_FILE).write_text(json.dumps(hooked_config(config), indent=2) + "\n", encoding="utf-8")
    return out


def load_hooked(directory: str | Path, device: str = "cpu") -> Any:
    """A HookedTransformer with the exported CoNN's weights (``model.autoconn`` holds config.json)."""
    try:
        import torch
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError as error:  # pragma: no cover - depends on the extra
        raise ImportError("load_hooked needs torch and transformer-lens: pip install -e '.[export]'") from error
    directory = Path(directory)
    kwargs = json.loads((directory / TL_CONFIG_FILE).read_text(encoding="utf-8"))
    kwargs["dtype"] = getattr(torch, kwargs.pop("dtype", "float32"))
    kwargs["device"] = device
    import warnings

    with warnings.catch_warnings():  # 3.9 announces HookedTransformer's removal in 4.0; it is what researchers use
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(HookedTransformerConfig(**kwargs))
    state = {name: torch.from_numpy(array) for name, array in read_safetensors(directory / TL_MODEL_FILE).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    real_missing = [k for k in missing if not k.endswith((".IGNORE", ".mask"))]
    if real_missing or unexpected:
        raise ValueError(f"state dict does not fit HookedTransformer: missing {real_missing}, unexpected {list(unexpected)}")
    model.eval()
    model.autoconn = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    return model


def run_hooked(model: Any, inputs: Sequence[Sequence[Any]], return_logits: bool = False) -> Any:
    """Decoded outputs (and, with return_logits, each input's logits [len+1, outputs] as numpy),
    running each input length as its own unpadded batch."""
    import torch

    codec = NumpyConn(model.autoconn, {})
    outputs: list[Any] = [None] * len(inputs)
    logits_out: list[Any] = [None] * len(inputs)
    by_length: dict[int, list[int]] = {}
    for i, seq in enumerate(inputs):
        by_length.setdefault(len(seq), []).append(i)
    with torch.no_grad():
        for _, rows in sorted(by_length.items()):
            chunk = [inputs[i] for i in rows]
            ids = torch.from_numpy(codec.encode(chunk))
            logits = model(ids, return_type="logits").cpu().numpy()
            for j, (i, decoded) in enumerate(zip(rows, codec.decode(logits, chunk))):
                outputs[i] = decoded
                logits_out[i] = logits[j]
    return (outputs, logits_out) if return_logits else outputs
