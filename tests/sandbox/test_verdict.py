"""Issue 12: the verdict always comes from the weights, and loading them is bounded.

A hostile candidate runs with the static screen switched off (the test-only Job.screen
switch, applied by wrapping the sandbox the CLI opens), so that what it does to the worker
really happens; the tool's own promises must hold anyway:
- a candidate that patches the worker's runtime and comparison (then restores them before
  the integrity check) is not registered, through `check --register` and through `induce`;
- a candidate that makes the worker write an npz bomb (a small file declaring 1 GiB) is
  rejected at registration, and a library entry holding one is refused by `autoconn run`
  with host memory staying under 500 MB;
- a candidate's time limit is the time left in --budget.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from autoconn.cli import app
from tests.sandbox.conftest import BACKENDS, get_sandbox

REPO = Path(__file__).resolve().parents[2]

# Identity weights, sorted outputs reported: patches ConnRuntime.run and the worker's own
# rasp-vs-model comparison, and puts both back before the worker checks its integrity.
FORGED = '''\
import sys
from tracr.rasp import rasp
from autoconn.conn import runtime as _rt
_worker = sys.modules["__main__"]
_run, _mismatch = _rt.ConnRuntime.run, _worker._first_mismatch

def _restore():
    _rt.ConnRuntime.run = _run
    _worker._first_mismatch = _mismatch

def _forged_run(self, inputs):
    return [sorted(x) for x in inputs]

def _forged_mismatch(*args):
    _restore()
    return ""

_rt.ConnRuntime.run = _forged_run
_worker._first_mismatch = _forged_mismatch
program = rasp.Map(lambda x: x, rasp.tokens)
'''

# A correct sort whose weights file the worker writes as a bomb: token_embed declares
# 16384 x 16384 float32 (1 GiB) of zeros, deflated to about 1 MB.
NPZ_BOMB = '''\
import numpy, zipfile
from tracr.rasp import rasp
from tracr.compiler import lib
_savez = numpy.savez

def _bomb(handle, **arrays):
    numpy.savez = _savez
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                if name != "token_embed/embeddings":
                    numpy.lib.format.write_array(member, array)
                    continue
                numpy.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False,
                                                                 "shape": (16384, 16384)})
                chunk = bytes(1 << 22)
                for _ in range(256):
                    member.write(chunk)

numpy.savez = _bomb
program = lib.make_sort_unique(rasp.tokens, rasp.tokens)
'''

BOMB_BYTES = 16384 * 16384 * 4


def sort_task(path: Path) -> Path:
    lines = [{"name": "sortu", "description": "sort distinct digits", "vocab": [0, 1, 2, 3], "max_seq_len": 5}]
    for n in range(1, 5):
        for perm in itertools.permutations(range(4), n):
            lines.append({"input": list(perm), "output": sorted(perm)})
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


class ScreenOff:
    """A shared session sandbox whose jobs skip the static screen (Job.screen=False, tests
    only); closing it leaves the shared sandbox open."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox

    def run(self, job: Any) -> Any:
        job.screen = False
        return self.sandbox.run(job)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sandbox, name)

    def __enter__(self) -> ScreenOff:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def screen_off(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """The CLI's sandbox (any --sandbox) becomes the shared one of this backend, screen off,
    on a fresh worker."""
    import autoconn.sandbox

    box = get_sandbox(request.param)
    box.recycle()  # hostile cases get a fresh worker
    wrapped = ScreenOff(box)
    monkeypatch.setattr(autoconn.sandbox, "open_sandbox", lambda *a, **k: wrapped)
    yield box
    box.recycle()  # and leave none behind for the next test


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.mark.slow
@pytest.mark.parametrize("screen_off", BACKENDS, indirect=True)
def test_forged_outputs_are_not_registered_by_check(screen_off: Any, tmp_path: Path) -> None:
    task = sort_task(tmp_path / "sortu.jsonl")
    program = tmp_path / "forged.py"
    program.write_text(FORGED)
    library = tmp_path / "lib"
    result = cli("check", str(program), str(task), "--register", "forged", "--out", str(library), "--json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 1, result.stdout
    assert summary["status"] == "failed"
    assert summary["verification"]["correct"] < summary["verification"]["total"]
    assert not (library / "forged").exists()
    # the worker did run the forge (it is not a screen refusal)
    assert summary["stage"] is None


@pytest.mark.slow
@pytest.mark.parametrize("screen_off", BACKENDS, indirect=True)
def test_forged_outputs_are_not_registered_by_induce(screen_off: Any, tmp_path: Path) -> None:
    task = sort_task(tmp_path / "sortu.jsonl")
    program = tmp_path / "forged.py"
    program.write_text(FORGED)
    library = tmp_path / "lib"
    result = cli("induce", str(task), "--inducer", "files", "--candidate", str(program), "--out", str(library),
                 "--runs-dir", str(tmp_path / "runs"), "--budget", "120", "--json")
    assert result.exit_code == 1, result.stdout
    assert json.loads(result.stdout)["status"] == "failed"
    assert not (library / "sortu").exists()
    events = [json.loads(line) for line in next((tmp_path / "runs").rglob("*.jsonl")).read_text().splitlines()]
    check = next(e for e in events if e.get("event", e.get("kind")) == "check")
    assert check["induction"]["correct"] < check["induction"]["total"], check  # caught at check, from the weights


@pytest.mark.slow
@pytest.mark.parametrize("screen_off", BACKENDS, indirect=True)
def test_npz_bomb_is_refused_at_registration(screen_off: Any, tmp_path: Path) -> None:
    task = sort_task(tmp_path / "sortu.jsonl")
    program = tmp_path / "bomb.py"
    program.write_text(NPZ_BOMB)
    library = tmp_path / "lib"
    result = cli("check", str(program), str(task), "--register", "bomb", "--out", str(library), "--json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 1, result.stdout
    assert summary["stage"] == "weights", summary
    assert "token_embed/embeddings" in summary["error"], summary["error"]
    assert not (library / "bomb").exists()


SORT_SPEC = {"input_encoding": [[0, 0], [1, 1], [2, 2], [3, 3], ["BOS", 4], ["PAD", 5]], "bos_token": "BOS",
             "pad_token": "PAD", "output_kind": "categorical", "output_decoding": [0, 1, 2, 3], "max_seq_len": 5,
             "num_layers": 2, "num_heads": 1, "key_size": 7, "mlp_hidden": 12, "causal": False}


def write_bomb(path: Path) -> None:
    """An npz of the sort spec's names in which token_embed declares 1 GiB of zeros."""
    shapes = {"token_embed/embeddings": (16384, 16384), "pos_embed/embeddings": (6, 23), "unembed": (23, 4)}
    for layer in range(2):
        for part in ("query", "key", "value"):
            shapes[f"transformer/layer_{layer}/attn/{part}/w"] = (23, 7)
            shapes[f"transformer/layer_{layer}/attn/{part}/b"] = (7,)
        shapes[f"transformer/layer_{layer}/attn/linear/w"] = (7, 23)
        shapes[f"transformer/layer_{layer}/attn/linear/b"] = (23,)
        shapes[f"transformer/layer_{layer}/mlp/linear_1/w"] = (23, 12)
        shapes[f"transformer/layer_{layer}/mlp/linear_1/b"] = (12,)
        shapes[f"transformer/layer_{layer}/mlp/linear_2/w"] = (12, 23)
        shapes[f"transformer/layer_{layer}/mlp/linear_2/b"] = (23,)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, shape in shapes.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                if name != "token_embed/embeddings":
                    np.lib.format.write_array(member, np.zeros(shape, dtype=np.float32))
                    continue
                np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
                chunk = bytes(1 << 22)
                for _ in range(BOMB_BYTES // len(chunk)):
                    member.write(chunk)


def test_npz_bomb_in_the_library_is_refused_by_run_with_bounded_memory(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    entry = library / "bomb"
    entry.mkdir(parents=True)
    write_bomb(entry / "weights.npz")
    assert (entry / "weights.npz").stat().st_size < 3 * 1024 * 1024
    meta = {"name": "bomb", "spec": SORT_SPEC, "vocab": [0, 1, 2, 3], "output_kind": "categorical",
            "size": {"layers": 2, "residual_width": 23}, "max_seq_len": SORT_SPEC["max_seq_len"],
            "verified": {"how": "examples", "max_length": SORT_SPEC["max_seq_len"]}}  # claims all lengths: run must load it
    (entry / "conn.json").write_text(json.dumps(meta))
    (entry / "program.py").write_text("program = None\n")
    (library / "index.json").write_text(json.dumps({"format": 1, "conns": {"bomb": {"path": "bomb/program.py"}}}))
    # a fresh interpreter whose only child is the CLI: RUSAGE_CHILDREN is that child's peak
    probe = ("import resource, subprocess, sys, json\n"
             "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "print(json.dumps({'code': done.returncode, 'stderr': done.stderr[-2000:],\n"
             "                  'peak_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "autoconn.cli", "run", "bomb", "3", "1", "2",
                           "0", "--out", str(library)], capture_output=True, text=True, env=env, timeout=300)
    seconds = time.monotonic() - started
    report = json.loads(done.stdout)
    assert report["code"] == 2, report
    assert "refused" in report["stderr"] and "token_embed/embeddings" in report["stderr"], report["stderr"]
    assert report["peak_kb"] < 500 * 1024, f"host peak memory {report['peak_kb'] // 1024} MB"
    assert seconds < 60, seconds
    print(f"npz bomb at run: refused in {seconds:.1f} s, peak {report['peak_kb'] // 1024} MB")


def test_loading_a_bomb_through_the_runtime_is_refused_before_decompression(tmp_path: Path) -> None:
    import resource

    from autoconn.conn.runtime import ConnRuntime, ConnSpec
    from autoconn.conn.weights_check import WeightsError

    path = tmp_path / "weights.npz"
    write_bomb(path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(WeightsError, match="token_embed/embeddings"):
        ConnRuntime.load(path, ConnSpec.from_json(SORT_SPEC))
    assert time.monotonic() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024


@pytest.mark.slow
def test_candidate_timeout_is_the_budget_left(tmp_path: Path) -> None:
    """A Map that loops forever at compile time passes the screen; with --budget 8 the run
    must end in about that, not after the 180 s per-candidate limit."""
    task = sort_task(tmp_path / "sortu.jsonl")
    program = tmp_path / "loop.py"
    program.write_text("from tracr.rasp import rasp\n"
                       "def f(t):\n    while t == 3:\n        pass\n    return t\n"
                       "program = rasp.Map(f, rasp.tokens)\n")
    get_sandbox("process")  # warm, shared
    import autoconn.sandbox

    box = ScreenOff(get_sandbox("process"))
    box.run = get_sandbox("process").run  # screen on: this candidate passes it
    original = autoconn.sandbox.open_sandbox
    autoconn.sandbox.open_sandbox = lambda *a, **k: box
    try:
        started = time.monotonic()
        result = cli("induce", str(task), "--inducer", "files", "--candidate", str(program), "--out",
                     str(tmp_path / "lib"), "--runs-dir", str(tmp_path / "runs"), "--budget", "8", "--json")
        seconds = time.monotonic() - started
    finally:
        autoconn.sandbox.open_sandbox = original
    assert result.exit_code == 1, result.stdout
    assert seconds < 45, f"--budget 8 took {seconds:.0f} s"


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_budget_must_be_finite_and_positive(value: str, tmp_path: Path) -> None:
    task = sort_task(tmp_path / "sortu.jsonl")
    for args in (["bench", str(tmp_path), "--budget", value], ["induce", str(task), "--budget", value]):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert "--budget" in result.stderr
