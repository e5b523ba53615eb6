"""Every task in rule_examples/ has a hand-written reference RASP program that is right.

For each task: load the task file and rule_examples/reference/<task>.py, check
``rasp.evaluate`` on every example, compile the program with tracr once, as the tool does
(``autoconn.conn.compile``: max_seq_len = twice the longest example, the tool's mlp_exactness),
and run **every** example through the compiled weights in the product's runtime
(``ConnRuntime``: one batched numpy forward, padded keys masked, attention sharpened as
registered CoNNs are). Categorical outputs must match exactly; numerical ones within 1e-6
under rasp.evaluate and within 1e-4 from the compiled model.

tracr's own ``model.apply`` (one input at a time, ~0.5 s each) is not used here: that the
runtime agrees with it is tests/conn/test_runtime*.py's job. Slow (a compile per task):
``pytest -m slow tests/test_reference_programs.py``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TASK_DIR = ROOT / "rule_examples"
REF_DIR = TASK_DIR / "reference"
TASKS = sorted(p.stem for p in TASK_DIR.glob("*.jsonl"))
EVAL_TOL = 1e-6  # numerical outputs, rasp.evaluate
COMPILED_TOL = 1e-4  # numerical outputs, compiled model (see the module docstring)


def load_task(name: str):
    """(header, [(input, expected outputs per position)]) -- parsed here, independent of autoconn."""
    header, examples = {}, []
    for line in (TASK_DIR / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if "input" not in obj:
            header = obj
            continue
        xs, out = obj["input"], obj["output"]
        examples.append((xs, list(out) if isinstance(out, list) else [out] * len(xs)))
    return header, examples


def load_program(name: str):
    path = REF_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"reference_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # our own trusted files
    return module.program


def is_numerical(examples) -> bool:
    return any(isinstance(v, float) and not float(v).is_integer() for _, out in examples for v in out)


def same(got, want, numerical: bool, tol: float = EVAL_TOL) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if numerical:
            if g is None or not math.isclose(float(g), float(w), rel_tol=0, abs_tol=tol):
                return False
        elif isinstance(w, bool) or isinstance(g, bool):
            if type(g) is not bool or g != w:  # noqa: E721 - True must not pass for 1
                return False
        elif g != w or type(g) is not type(w):
            # rasp.evaluate may give 3.0 for a mean of equal ints; accept only exact equals
            if not (isinstance(g, (int, float)) and isinstance(w, int) and not isinstance(w, bool) and g == w):
                return False
    return True


def test_every_task_has_a_reference():
    assert len(TASKS) >= 32
    missing = [t for t in TASKS if not (REF_DIR / f"{t}.py").exists()]
    assert not missing, f"no reference program for {missing}"


def test_reference_files_import_only_tracr():
    for name in TASKS:
        src = (REF_DIR / f"{name}.py").read_text(encoding="utf-8")
        for line in src.splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert stripped.startswith(("from tracr", "import tracr")), f"{name}: {stripped}"


@pytest.mark.parametrize("name", TASKS)
def test_reference_evaluates_correctly(name):
    from tracr.rasp import rasp

    _, examples = load_task(name)
    program = load_program(name)
    numerical = is_numerical(examples)
    for xs, want in examples:
        got = rasp.evaluate(program, xs)
        assert same(got, want, numerical), f"{name}: rasp.evaluate({xs}) = {got}, expected {want}"


@pytest.mark.slow
@pytest.mark.parametrize("name", TASKS)
def test_reference_compiles_and_runs_correctly(name):
    from autoconn.conn.compile import compile_program, default_settings
    from autoconn.conn.runtime import ConnRuntime

    header, examples = load_task(name)
    program = load_program(name)
    numerical = is_numerical(examples)
    max_seq_len = 2 * max(len(xs) for xs, _ in examples)
    model = compile_program(program, list(header["vocab"]), default_settings(max_seq_len))
    runtime = ConnRuntime.from_model(model, max_seq_len)
    outputs = runtime.run([list(xs) for xs, _ in examples], backend="numpy")
    for (xs, want), got in zip(examples, outputs, strict=True):
        assert same(got, want, numerical, COMPILED_TOL), f"{name}: compiled model on {xs} gave {got}, expected {want}"
