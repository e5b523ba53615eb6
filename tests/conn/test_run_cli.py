"""`autoconn run`: one input or a file of them (JSON lines out), answered without importing jax."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from autoconn.cli import app
from tests.conftest import FIXTURE_LIBRARY, REPO

LIBRARY = str(FIXTURE_LIBRARY)


def invoke(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, [*args, "--out", LIBRARY], input=stdin)


def test_input_file_gives_one_json_line_per_input(tmp_path):
    path = tmp_path / "inputs.txt"
    path.write_text("3 1 2\n\n[5, 4, 4]\n0 0 1 5\n", encoding="utf-8")
    result = invoke("run", "sort", "--input-file", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["input"] for line in lines] == [[3, 1, 2], [5, 4, 4], [0, 0, 1, 5]]
    assert [line["output"] for line in lines] == [[1, 2, 3], [4, 4, 5], [0, 0, 1, 5]]
    plain = invoke("run", "sort", "--input-file", str(path))
    assert plain.stdout.splitlines() == ["1 2 3", "4 4 5", "0 0 1 5"]


def test_input_file_from_stdin_splits_single_words_into_characters():
    result = invoke("run", "reverse", "--input-file", "-", "--json", stdin="abcd\na b\n")
    assert [json.loads(line)["output"] for line in result.stdout.splitlines()] == [list("dcba"), list("ba")]


def test_input_file_errors_name_the_line_and_print_nothing(tmp_path):
    path = tmp_path / "inputs.txt"
    path.write_text("1 2\n9 1\n", encoding="utf-8")
    result = invoke("run", "sort", "--input-file", str(path))
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{path}:2:" in result.stderr and "'9'" in result.stderr
    bad_json = invoke("run", "sort", "--input-file", "-", stdin="[1, 2\n")
    assert bad_json.exit_code == 2 and "-:1: not a JSON list" in bad_json.stderr
    assert invoke("run", "sort").exit_code == 2  # neither tokens nor a file
    assert invoke("run", "sort", "1", "--input-file", str(path)).exit_code == 2  # both
    assert invoke("run", "sort", "--input-file", str(tmp_path / "missing.txt")).exit_code == 2
    assert invoke("run", "sort", "--input-file", "-", stdin="\n\n").exit_code == 2


def test_run_never_imports_jax():
    code = ("import sys\nfrom autoconn.cli import app\n"
            f"sys.argv = ['autoconn', 'run', 'sort', '3', '1', '2', '--out', {LIBRARY!r}]\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'jax' not in sys.modules and 'tracr' not in sys.modules, 'jax imported'\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 2 3"
