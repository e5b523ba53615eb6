"""The register step writes fusion metadata: `autoconn induce` (the real graph, files inducer,
process sandbox, real tracr compile) and `autoconn check --register`, with and without flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write_jsonl
from tests.pipeline.test_induce import LENGTH_TASK, RIGHT, autoconn

SORT_PROGRAM = """from tracr.rasp import rasp
from tracr.compiler import lib
program = lib.make_sort_unique(rasp.tokens, rasp.tokens)
"""


@pytest.fixture
def length_task(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "length.jsonl", LENGTH_TASK)


@pytest.mark.slow
def test_induce_registers_the_fusion_flags(tmp_path: Path, length_task: Path):
    (tmp_path / "right.py").write_text(RIGHT)
    result = autoconn("induce", str(length_task), "--inducer", "files", "--candidate", str(tmp_path / "right.py"),
                      "--sandbox", "process", "--out", "lib", "--json", "--name", "count",
                      "--trigger", " =", "--operand-start", "count[", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    fusion = json.loads((tmp_path / "lib" / "count" / "conn.json").read_text())["fusion"]
    assert fusion["operand_start"] == "count[" and fusion["trigger"] == " =" and fusion["split"] == "char"
    assert fusion["token_map"] == {"a": "a", "b": "b"} and fusion["output"]["positions"] == "first"
    index = json.loads((tmp_path / "lib" / "index.json").read_text())
    assert index["conns"]["count"]["fusion"] == {"operand_start": "count[", "trigger": " =", "split": "char"}


@pytest.mark.slow
def test_check_register_writes_the_default_fusion_spec(tmp_path: Path):
    task = write_jsonl(tmp_path / "sort.jsonl", [{"input": list(p), "output": sorted(p)}
                                                 for p in ([3, 1, 2], [2, 1], [1], [4, 2, 3, 1], [0, 4], [2, 0, 1])])
    (tmp_path / "sort.py").write_text(SORT_PROGRAM)
    result = autoconn("check", "sort.py", str(task), "--register", "sorter", "--sandbox", "process", "--out", "lib",
                      "--output-positions", "last", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    fusion = json.loads((tmp_path / "lib" / "sorter" / "conn.json").read_text())["fusion"]
    assert fusion["operand_start"] == "sorter(" and fusion["trigger"] == ")="
    assert fusion["output"] == {"positions": "last", "join": ""}


def test_bad_fusion_flags_stop_induce_and_check_before_any_work(tmp_path: Path, length_task: Path):
    (tmp_path / "right.py").write_text(RIGHT)
    induce = autoconn("induce", str(length_task), "--inducer", "files", "--candidate", str(tmp_path / "right.py"),
                      "--out", "lib", "--trigger", "a", cwd=tmp_path)
    assert induce.returncode == 2 and "fusion:" in induce.stderr and "can be written with operand text" in induce.stderr
    check = autoconn("check", "right.py", str(length_task), "--register", "count", "--split", "space",
                     "--output-join", "-", "--out", "lib", cwd=tmp_path)
    assert check.returncode == 2 and "output join '-'" in check.stderr
    unregistered = autoconn("check", "right.py", str(length_task), "--trigger", "=", "--out", "lib", cwd=tmp_path)
    assert unregistered.returncode == 2 and "add --register NAME" in unregistered.stderr
    assert not (tmp_path / "lib").exists() and not (tmp_path / "runs").exists()
