"""How far a CoNN is proven, read from conn.json with a fallback for entries registered before
the ``verified`` block existed (they only have ``verification.max_length``)."""

from __future__ import annotations

from typing import Any

from autoconn.verdict import verified_length


def verified_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """{"length", "how", "compiled", "held_out", "sealed", "oracle", "legacy"} — the verified length
    marked against the compiled one, and the per-length figures when the entry has them."""
    block = meta.get("verified")
    compiled = meta.get("max_seq_len") or (meta.get("spec") or {}).get("max_seq_len")
    if isinstance(block, dict) and block.get("max_length") is not None:
        return {
            "length": verified_length(meta),
            "how": block.get("how", "examples"),
            "compiled": int(block.get("compiled_max_seq_len") or compiled or 0),
            "held_out": block.get("held_out"),
            "sealed": block.get("sealed"),
            "oracle": block.get("oracle"),
            "validation_revealed": block.get("validation_revealed"),
            "examples_label": "sealed examples",
            "legacy": False,
        }
    old = meta.get("verification") or {}
    return {
        "length": verified_length(meta),
        "how": "examples",
        "compiled": int(compiled or 0),
        "held_out": old.get("examples") not in ("task", None) or None,
        "sealed": {"total": old.get("total"), "correct": old.get("correct")} if old.get("total") is not None else None,
        # older entries checked by `autoconn check` ran the whole task file ("task"), not a sealed split
        "examples_label": "task examples (all)" if old.get("examples") == "task" else "held-out examples",
        "oracle": None,
        "validation_revealed": None,
        "legacy": True,
    }
