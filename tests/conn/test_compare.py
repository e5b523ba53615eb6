"""The host's verdict and the sandbox worker's miscompile check say "this value matches" on the
same cases: one rule (autoconn.conn.compare), so a value the worker lets through is never one the
host then fails, or the other way round."""

from __future__ import annotations

import pytest

from autoconn.conn.verify import verify_outputs
from autoconn.sandbox.worker import _first_mismatch
from autoconn.task import Example

# (expected, the compiled model's value, output kind, matches?)
CASES = [
    ("a", "a", "categorical", True),
    ("a", "b", "categorical", False),
    (2, 2, "categorical", True),
    (2, 2.0, "categorical", True),  # rasp.evaluate's mean of equal ints is a float
    (True, True, "categorical", True),
    (True, 1, "categorical", False),  # True is not 1: a rule over booleans must give booleans
    (1, True, "categorical", False),
    (False, 0.0, "categorical", False),
    (0.5, 0.5004, "numerical", True),  # float32 noise of a compiled mean
    (0.5, 0.5, "numerical", True),
    (0.5, 0.502, "numerical", False),  # beyond NUMERIC_TOLERANCE
    (1, 1.0, "numerical", True),
    (True, 1.0, "numerical", True),  # a numerical 0/1 indicator SOp evaluates to booleans
    (1.0, True, "numerical", False),  # the model gives numbers, never a boolean
    (1.0, float("nan"), "numerical", False),
    (1.0, float("inf"), "numerical", False),
    (1.0, "1", "numerical", False),
    ("1", 1.0, "numerical", False),
]


@pytest.mark.parametrize(("expected", "got", "kind", "matches"), CASES)
def test_worker_and_host_agree(expected: object, got: object, kind: str, matches: bool) -> None:
    host = verify_outputs([Example(("x",), (expected,))], [[got]], kind).passed
    worker = _first_mismatch([["x"]], [[expected]], [[got]], kind) == ""
    assert (host, worker) == (matches, matches), (expected, got, kind)
