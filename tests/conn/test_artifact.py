"""The library on disk: write, read back without recompiling, atomic index, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoconn.conn.artifact import Library, LibraryError
from autoconn.conn.compile import compile_program, default_settings, model_size
from autoconn.conn.runtime import ConnRuntime
from tests.conn import programs

SOURCE = ("from tracr.rasp import rasp\n"
          "program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE))\n")


@pytest.fixture(scope="module")
def length_runtime() -> tuple[ConnRuntime, dict]:
    settings = default_settings(8)
    model = compile_program(programs.length(), ["a", "b"], settings)
    runtime = ConnRuntime.from_model(model, 8)
    meta = {"description": "length of the input", "vocab": ["a", "b"], "output_kind": "categorical",
            "output_shape": "broadcast", "max_seq_len": 8, "compiler": settings.to_json(),
            "size": model_size(model).to_json(), "spec": runtime.spec.to_json(),
            "verified": {"how": "examples", "held_out": True, "max_length": 4, "compiled_max_seq_len": 8,
                         "sealed": {"total": 5, "correct": 5, "max_length": 4}, "validation": None, "validation_revealed": 0,
                         "oracle": None, "statement": "proven on inputs up to 4 tokens (compiled for 8) by 5/5 sealed examples"},
            "provenance": {"inducer": "hand-written"}, "task": {"path": "t.jsonl", "sha256": "0" * 64}}
    return runtime, meta


def test_write_then_load_runs_without_recompiling(tmp_path: Path, length_runtime):
    runtime, meta = length_runtime
    library = Library(tmp_path / "lib")
    entry = library.write("length", SOURCE, meta, runtime=runtime)
    assert sorted(p.name for p in entry.path.iterdir()) == ["conn.json", "program.py", "weights.npz"]
    text = entry.program_path.read_text()
    assert text.startswith('"""CoNN \'length\'') and "program = rasp.SelectorWidth" in text
    assert "5/5 sealed examples" in text and "proven up to 4 tokens" in text
    index = json.loads((tmp_path / "lib" / "index.json").read_text())
    assert index["conns"]["length"]["layers"] == meta["size"]["layers"]
    # A fresh process loads the weights and runs them; tracr's compiler is never imported.
    code = ("import sys, json; from autoconn.conn.artifact import Library;"
            f"e = Library({str(tmp_path / 'lib')!r}).get('length'); print(json.dumps(e.runtime().run([['a','b','b']])));"
            "print('tracr.compiler.compiling' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[0]) == [[3, 3, 3]] and lines[1] == "False"


def test_existing_name_is_refused_unless_forced(tmp_path: Path, length_runtime):
    runtime, meta = length_runtime
    library = Library(tmp_path / "lib")
    library.write("length", SOURCE, meta, runtime=runtime)
    with pytest.raises(LibraryError, match="already exists"):
        library.write("length", SOURCE, meta, runtime=runtime)
    library.write("length", SOURCE + "# v2\n", meta, runtime=runtime, force=True)
    assert "# v2" in library.get("length").program_path.read_text()
    assert not [p for p in (tmp_path / "lib").iterdir() if p.name.startswith((".staging", ".retired"))]


@pytest.mark.parametrize("name", ["../evil", "", "a/b", ".hidden", "x" * 65, "evil\n", "Upper", "index.json", "a.b"])
def test_bad_names_are_refused(tmp_path: Path, length_runtime, name: str):
    runtime, meta = length_runtime
    with pytest.raises(LibraryError, match="is not a valid name"):
        Library(tmp_path / "lib").write(name, SOURCE, meta, runtime=runtime)


def test_missing_entry_names_what_exists(tmp_path: Path, length_runtime):
    runtime, meta = length_runtime
    library = Library(tmp_path / "lib")
    library.write("length", SOURCE, meta, runtime=runtime)
    with pytest.raises(LibraryError, match=r"no CoNN named 'nope'.*registered: length"):
        library.get("nope")


INDEX_WRITER = """
import sys
from autoconn.conn.artifact import Library
lib = Library(sys.argv[1])
big = "x" * 20000
i = 0
while True:
    i += 1
    lib.write_index({"format": 1, "conns": {f"c{j}": {"blob": big, "generation": i} for j in range(300)}})
"""


def test_index_survives_a_process_killed_mid_write(tmp_path: Path):
    """Kill -9 a process rewriting a 6 MB index over and over; the index always parses whole."""
    root = tmp_path / "lib"
    Library(root).write_index({"format": 1, "conns": {"before": {"generation": 0}}})
    for delay in (0.3, 0.45, 0.6, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", INDEX_WRITER, str(root)])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        index = json.loads((root / "index.json").read_text())  # never half-written
        generations = {entry["generation"] for entry in index["conns"].values()}
        assert len(generations) == 1
    # leftover temp files are hidden and never mistaken for the index
    assert (root / "index.json").exists()


def _register(args: tuple[str, str, dict, str]) -> None:
    root, name, meta, weights = args
    Library(root).write(name, SOURCE, meta, weights_file=weights)


@pytest.mark.slow
def test_concurrent_writers_keep_every_entry(tmp_path: Path, length_runtime):
    runtime, meta = length_runtime
    weights = tmp_path / "w.npz"
    runtime.save_weights(weights)
    root = str(tmp_path / "lib")
    jobs = [(root, f"c{i}", meta, str(weights)) for i in range(8)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_register, jobs)
    assert Library(root).names() == sorted(f"c{i}" for i in range(8))
