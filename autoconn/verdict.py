"""What "verified" means for one CoNN, as stored in conn.json's ``verified`` block.

    {"how": "examples" | "oracle",     what proved it
     "held_out": bool,                 False only with --no-sealed (or a hand-checked program)
     "max_length": L,                  inputs up to L tokens are proven; `run` refuses longer ones
     "compiled_max_seq_len": M,
     "sealed": {"total", "correct", "max_length"} | None,   the task file's sealed set
     "validation": {"total", "correct", "max_length"} | None,
     "validation_revealed": n,         counterexamples fed back to the inducers during the run
     "oracle": {"rule", "lengths": [{"length", "inputs", "correct", "exhaustive"}],
                "inputs", "exhaustive_lengths", "outside_domain"} | None,
     "statement": one sentence a person reads}

The proven length is the longest sealed example without an oracle; with one, the longest L such
that every length 1..L had inputs in the rule's domain and all were right.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoconn.conn.verify import Verification


def counts(verification: Verification | None) -> dict[str, int] | None:
    if verification is None or verification.total == 0:
        return None
    return {"total": verification.total, "correct": verification.correct, "max_length": verification.max_length}


def oracle_block(rule: str, lengths: list[dict[str, int]], exhaustive: tuple[int, ...], outside_domain: int,
                 max_seq_len: int) -> dict[str, Any]:
    """The oracle's part: per length how many inputs were checked, whether all of them."""
    checked = {row["length"]: row for row in lengths}
    rows = [{"length": n, "inputs": checked.get(n, {}).get("inputs", 0), "correct": checked.get(n, {}).get("correct", 0),
             "exhaustive": n in exhaustive} for n in range(1, max_seq_len + 1)]
    return {"rule": rule, "lengths": rows, "inputs": sum(r["inputs"] for r in rows),
            "exhaustive_lengths": list(exhaustive), "outside_domain": outside_domain}


def proven_length(oracle: Mapping[str, Any] | None, sealed: Mapping[str, int] | None,
                  validation: Mapping[str, int] | None, held_out: bool) -> int:
    if oracle:
        length = 0
        for row in oracle["lengths"]:
            if row["inputs"] == 0 or row["correct"] != row["inputs"]:
                break
            length = row["length"]
        return length
    if held_out and sealed:
        return int(sealed["max_length"])
    return int((validation or sealed or {}).get("max_length", 0))


def statement(record: Mapping[str, Any]) -> str:
    """One sentence: how far, by what, and whether anything an inducer saw took part."""
    length, compiled = record["max_length"], record["compiled_max_seq_len"]
    parts = []
    if record.get("oracle"):
        oracle = record["oracle"]
        exhaustive = oracle["exhaustive_lengths"]
        every = f"every input of lengths {exhaustive[0]}-{exhaustive[-1]}" if exhaustive else "no length exhaustively"
        parts.append(f"the oracle {oracle['rule']} on {oracle['inputs']} inputs ({every}, sampled beyond)")
    if record.get("sealed"):
        sealed = record["sealed"]
        parts.append(f"{sealed['correct']}/{sealed['total']} sealed examples no inducer saw")
    if not record.get("held_out"):
        validation = record.get("validation") or {}
        parts.append(f"{validation.get('correct')}/{validation.get('total')} examples that were NOT held out "
                     "(their counterexamples may have been shown to the inducer)")
    limit = "" if length >= compiled else f"; inputs of {length + 1}-{compiled} tokens are refused unless asked for"
    return f"proven on inputs up to {length} tokens (compiled for {compiled}) by " + " and ".join(parts) + limit


def make_record(*, how: str, held_out: bool, compiled_max_seq_len: int, sealed: Verification | None,
                validation: Verification | None, validation_revealed: int,
                oracle: dict[str, Any] | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "how": how,
        "held_out": held_out,
        "compiled_max_seq_len": compiled_max_seq_len,
        "sealed": counts(sealed),
        "validation": counts(validation),
        "validation_revealed": validation_revealed,
        "oracle": oracle,
    }
    record["max_length"] = proven_length(oracle, record["sealed"], record["validation"], held_out)
    record["statement"] = statement(record)
    return record


def with_oracle(previous: Mapping[str, Any] | None, oracle: dict[str, Any], compiled_max_seq_len: int,
                legacy: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record after `autoconn verify`: the earlier sealed and validation figures kept, the
    oracle's (held out from everyone) replacing any earlier oracle, the proven length recomputed,
    so it may go up or down. `legacy`: an entry's figures from before the verified block."""
    record = dict(previous or {"sealed": None, "validation": None, "validation_revealed": 0,
                               "earlier_verification": dict(legacy) if legacy else None})
    record.update(how="oracle", held_out=True, compiled_max_seq_len=compiled_max_seq_len, oracle=oracle)
    record["max_length"] = proven_length(oracle, record.get("sealed"), record.get("validation"), True)
    record["statement"] = statement(record)
    return record


def verified_length(meta: Mapping[str, Any]) -> int:
    """How long an input a registered CoNN is proven on (entries from before the verified block:
    the longest held-out example they were checked on)."""
    record = meta.get("verified")
    if isinstance(record, Mapping) and isinstance(record.get("max_length"), int):
        return int(record["max_length"])
    legacy = (meta.get("verification") or {}).get("max_length")
    return int(legacy) if isinstance(legacy, int) else int(meta.get("max_seq_len") or 0)


def record_counts(record: Mapping[str, Any]) -> tuple[int, int]:
    """(right, total) over everything that gave a verified block's verdict: the sealed examples
    (the validation ones when nothing was held out) and the oracle's inputs."""
    sealed = record.get("sealed") or {}
    oracle = record.get("oracle") or {}
    checked = sealed if record.get("held_out") or not record.get("validation") else record.get("validation") or {}
    right = int(checked.get("correct", 0)) + sum(int(r.get("correct", 0)) for r in oracle.get("lengths", []))
    return right, int(checked.get("total", 0)) + int(oracle.get("inputs", 0))


def verdict_counts(meta: Mapping[str, Any]) -> tuple[int, int]:
    """record_counts of a conn.json (entries from before the verified block: their held-out figures)."""
    record = meta.get("verified")
    if isinstance(record, Mapping):
        return record_counts(record)
    legacy = meta.get("verification") or {}
    return int(legacy.get("correct", 0) or 0), int(legacy.get("total", 0) or 0)
