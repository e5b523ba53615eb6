"""When one output value of a compiled CoNN counts as the expected one.

The single home of this rule: the host's verdict (:mod:`autoconn.conn.verify`), the oracle, the
sandbox worker's miscompile check (compiled model against ``rasp.evaluate``) and the search's
numerical match all read it from here, so "verified" means the same thing at every step. The
worker imports this module inside the sandbox image, so it imports nothing beyond the standard
library.
"""

from __future__ import annotations

import math
from typing import TypeGuard

# Compiled numerical outputs carry float32 noise (~1e-5 after sharpening); the rules' numbers
# (fractions of at most max_seq_len positions, counts) differ by far more than this.
NUMERIC_TOLERANCE = 1e-3


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def values_match(expected: object, got: object, kind: str, tolerance: float = NUMERIC_TOLERANCE) -> bool:
    """One position. Numerical: a finite number within `tolerance` of the expected number.
    Categorical: the same value, and a boolean only for a boolean (True is not 1); 2 and 2.0 agree."""
    if kind == "numerical":
        if not _number(got) or not isinstance(expected, (int, float)):
            return False
        return math.isfinite(float(got)) and abs(float(got) - float(expected)) <= tolerance
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if _number(expected) and _number(got):
        return float(expected) == float(got)
    return expected == got
