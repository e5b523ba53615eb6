"""`autoconn list/show/run` against the tracked fixture library (tests/fixtures/library), including the bad-input exits."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from autoconn.cli import app
from autoconn.conn.artifact import Library
from tests.conftest import FIXTURE_LIBRARY

LIBRARY = str(FIXTURE_LIBRARY)


def invoke(*args: str):
    return CliRunner().invoke(app, [*args, "--out", LIBRARY])


def test_list_and_show_json():
    listed = json.loads(invoke("list", "--json").stdout)
    assert {"copy", "reverse", "length", "parity", "hist", "sort_unique", "last_token"} <= set(listed)
    assert all(entry["heldout_accuracy"] == 1.0 for entry in listed.values())
    shown = json.loads(invoke("show", "length", "--json").stdout)
    assert shown["size"]["layers"] >= 1 and shown["program"].endswith("length/program.py")


def test_run_from_stored_weights():
    result = invoke("run", "reverse", "a", "b", "c", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["output"] == ["c", "b", "a"]
    parity = invoke("run", "parity", "1", "0", "1", "1", "--json")
    assert json.loads(parity.stdout)["output"] == [1, 1, 1, 1]


def test_run_rejects_a_token_outside_the_vocab():
    result = invoke("run", "reverse", "a", "z")
    assert result.exit_code == 2 and "'z'" in result.stderr and "not in this CoNN's vocab" in result.stderr


def test_run_refuses_an_input_longer_than_the_proven_length():
    proven = Library(LIBRARY).get("reverse").verified_length
    result = invoke("run", "reverse", *(["a"] * (proven + 1)))
    assert result.exit_code == 2 and f"proven only up to {proven} (compiled for 16)" in result.stderr
    assert "--unverified-lengths" in result.stderr


def test_unknown_conn_exits_2_and_names_the_library():
    result = invoke("run", "nope", "a")
    assert result.exit_code == 2 and "no CoNN named 'nope'" in result.stderr
