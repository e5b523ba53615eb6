"""Build a library for LLM tests from this repository's trusted reference programs.

The fixture library (tests/fixtures/library) holds eight CoNNs; behaviour retrieval needs a few more
(a balanced-prefix CoNN for Dyck-like tasks, a numerical one). They are compiled here, in the
test process, from rule_examples/reference/*.py (our own code, never a model's), verified on
their task files with the compiled weights and registered like the pipeline would.
"""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURE_LIBRARY, REPO


def register_reference(library: Path, name: str, *, max_seq_len: int = 10, verified_max_length: int | None = None,
                       task_path: Path | None = None) -> None:
    from autoconn.checking import conn_metadata
    from autoconn.conn.artifact import Library
    from autoconn.conn.compile import compile_program, default_settings, model_size
    from autoconn.conn.runtime import ConnRuntime
    from autoconn.conn.verify import verify_outputs
    from autoconn.sandbox import fastinit
    from autoconn.task import load_task

    fastinit.install()
    task_file = task_path or REPO / "rule_examples" / f"{name}.jsonl"
    task = load_task(task_file, max_seq_len=max_seq_len)
    program = runpy.run_path(str(REPO / "rule_examples" / "reference" / f"{name}.py"))["program"]
    settings = default_settings(max_seq_len)
    model = compile_program(program, task.input_vocab, settings)
    runtime = ConnRuntime.from_model(model, max_seq_len)
    examples = [e for e in task.examples if len(e.inputs) <= max_seq_len]
    scored = verify_outputs(examples, runtime.run([list(e.inputs) for e in examples]), task.output_kind)
    assert scored.passed, f"reference {name} is wrong on its own task"
    meta: dict[str, Any] = conn_metadata(task, settings, model_size(model).to_json(), runtime.spec.to_json(), scored,
                                         {"inducer": "hand-written"})
    meta["task"]["path"] = str(task_file)
    proven = verified_max_length or max(len(e.inputs) for e in examples)
    meta["verified"] = {"how": "examples", "max_length": proven}
    source = (REPO / "rule_examples" / "reference" / f"{name}.py").read_text(encoding="utf-8")
    Library(library).write(name, source, meta, runtime=runtime, force=True)


def build_library(target: Path, extra: tuple[str, ...] = ("dyck1_prefix", "frac_prevs")) -> Path:
    """A copy of the fixture library plus compiled reference CoNNs; rule_examples/ beside it so the
    copied entries' recorded task paths (relative to the repository) resolve."""
    shutil.copytree(FIXTURE_LIBRARY, target)
    if not (target.parent / "rule_examples").exists():
        shutil.copytree(REPO / "rule_examples", target.parent / "rule_examples")
    for name in extra:
        register_reference(target, name)
    return target
