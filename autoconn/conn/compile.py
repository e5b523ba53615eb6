"""RASP program -> tracr transformer, with the settings that avoid tracr's silent traps.

tracr's default ``mlp_exactness=100`` makes SelectorWidth wrong from width 10 up (no error
is raised), so the exactness is scaled to the compiled length here. Model-written programs
are compiled only inside the sandbox worker; this module is what the worker calls.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

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
    def from_json(cls, data: dict[str, Any]) -> "CompileSettings":
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


def compile_program(program: Any, vocab: Sequence[Token], settings: CompileSettings) -> Any:
    """Compiles a rasp.SOp; returns tracr's AssembledTransformerModel (raises on failure)."""
    from tracr.compiler import compiling  # heavy import, kept out of module import time

    return compiling.compile_rasp_to_model(
        program,
        vocab=set(vocab),
        max_seq_len=settings.max_seq_len,
        causal=settings.causal,
        compiler_bos=settings.compiler_bos,
        compiler_pad=settings.compiler_pad,
        mlp_exactness=settings.mlp_exactness,
    )


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
