"""Shared fixtures: task files written on the fly and a CLI runner."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def make_task(tmp_path: Path) -> Callable[..., Path]:
    def make(rows: list[Any], name: str = "task.jsonl") -> Path:
        return write_jsonl(tmp_path / name, rows)
    return make


def reverse_rows(max_len: int = 5, vocab: str = "abc") -> list[dict[str, Any]]:
    import itertools
    rows = []
    for n in range(1, max_len + 1):
        for combo in itertools.islice(itertools.product(vocab, repeat=n), 12):
            rows.append({"input": list(combo), "output": list(reversed(combo))})
    return rows
