"""A numerical CoNN for the export tests: frac_prevs compiled in-process from our own trusted
program (tests/conn/programs.py), registered in a temporary library."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoconn.conn.artifact import Library
from autoconn.conn.compile import compile_program, default_settings, model_size
from autoconn.conn.runtime import ConnRuntime
from tests.conn import programs

SOURCE = "from tracr.compiler import lib\nfrom tracr.rasp import rasp\nprogram = lib.make_frac_prevs(rasp.tokens == 'x')\n"


@pytest.fixture(scope="session")
def numerical_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("numlib")
    settings = default_settings(8)
    vocab = ["x", "y", "z"]
    model = compile_program(programs.frac_prevs(), vocab, settings)
    runtime = ConnRuntime.from_model(model, 8)
    meta = {"description": "fraction of x so far", "vocab": vocab, "output_kind": "numerical", "output_shape": "sequence",
            "max_seq_len": 8, "compiler": settings.to_json(), "size": model_size(model).to_json(),
            "spec": runtime.spec.to_json(),
            "verified": {"how": "oracle", "max_length": 8, "compiled_max_seq_len": 8, "held_out": True, "sealed": None,
                         "validation_revealed": 0,
                         "oracle": {"lengths": [{"length": n, "inputs": 3 ** n, "correct": 3 ** n, "exhaustive": True}
                                                for n in range(1, 9)],
                                    "inputs": sum(3 ** n for n in range(1, 9)), "exhaustive_lengths": list(range(1, 9))}},
            "provenance": {"inducer": "hand-written", "attempts": 1, "seconds": 0.5},
            "task": {"path": "t.jsonl", "sha256": "0" * 64}}
    Library(root).write("frac_prevs", SOURCE, meta, runtime=runtime)
    return root
