"""The tracked fixture library (tests/fixtures/library) is a valid library: the tests that read it
would otherwise fail for the wrong reason. `make demo` writes generated_conns/, which git ignores."""

from __future__ import annotations

import subprocess

from typer.testing import CliRunner

from autoconn.cli import app
from autoconn.conn.artifact import Library
from autoconn.conn.weights_check import check_weights_file
from tests.conftest import FIXTURE_LIBRARY, REPO

NAMES = ["copy", "hist", "last_token", "length", "parity", "reverse", "sort", "sort_unique"]


def test_index_and_folders_agree():
    library = Library(FIXTURE_LIBRARY)
    assert library.check(repair=False) == []
    assert library.names() == NAMES


def test_list_check_passes():
    result = CliRunner().invoke(app, ["list", "--check", "--out", str(FIXTURE_LIBRARY), "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == f"library {FIXTURE_LIBRARY}: index and folders agree"


def test_every_entry_is_verified_and_its_weights_match_its_spec():
    for entry in Library(FIXTURE_LIBRARY).entries():
        assert entry.verified_length >= 8, entry.name
        check_weights_file(entry.path / "weights.npz", entry.spec)


def test_the_fixture_library_is_tracked_and_the_user_library_is_ignored():
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "tests/fixtures/library/index.json"], cwd=REPO,
                             capture_output=True, text=True)
    if "not a git repository" in tracked.stderr:
        return  # an unpacked source tree: nothing to compare
    assert tracked.returncode == 0, tracked.stderr
    ignored = subprocess.run(["git", "check-ignore", "-q", "generated_conns/sort/conn.json"], cwd=REPO)
    assert ignored.returncode == 0, "generated_conns/ (the user's library, written by `make demo`) must be git-ignored"
