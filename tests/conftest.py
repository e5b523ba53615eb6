"""Shared fixtures: task files written on the fly, the tracked fixture library, and a note on unmarked slow tests."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The tracked library the tests read (eight verified CoNNs). `make demo` writes the user's
# generated_conns/, which git ignores; tests never read or write that one. A test that changes a
# library works on a copy (`fixture_library_copy`); `_fixture_library_untouched` fails the session
# if anything under the tracked one was written.
FIXTURE_LIBRARY = REPO / "tests" / "fixtures" / "library"


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def make_task(tmp_path: Path) -> Callable[..., Path]:
    def make(rows: list[Any], name: str = "task.jsonl") -> Path:
        return write_jsonl(tmp_path / name, rows)
    return make


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="session", autouse=True)
def _fixture_library_untouched() -> Iterator[None]:
    before = _snapshot(FIXTURE_LIBRARY)
    yield
    after = _snapshot(FIXTURE_LIBRARY)
    changed = sorted(set(before) ^ set(after) | {k for k in before.keys() & after.keys() if before[k] != after[k]})
    assert not changed, f"a test wrote into the tracked fixture library {FIXTURE_LIBRARY}: {changed[:10]}"


@pytest.fixture
def fixture_library_copy(tmp_path: Path) -> Path:
    """A private, writable copy of the fixture library."""
    target = tmp_path / "library"
    shutil.copytree(FIXTURE_LIBRARY, target, ignore=shutil.ignore_patterns(".index.lock"))
    return target


def reverse_rows(max_len: int = 5, vocab: str = "abc") -> list[dict[str, Any]]:
    import itertools
    rows = []
    for n in range(1, max_len + 1):
        for combo in itertools.islice(itertools.product(vocab, repeat=n), 12):
            rows.append({"input": list(combo), "output": list(reversed(combo))})
    return rows


# Keeps the slow marks honest: `make test-fast` (-m "not slow") should stay quick, so a test that
# takes longer than this without the mark is listed at the end of the run (a note, not a failure:
# timings on a busy machine are noisy).
SLOW_SECONDS = 5.0
_unmarked_slow: list[tuple[str, float]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.duration > SLOW_SECONDS and "slow" not in report.keywords:
        _unmarked_slow.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _unmarked_slow:
        terminalreporter.section(f"over {SLOW_SECONDS:g} s without @pytest.mark.slow")
        for nodeid, seconds in sorted(_unmarked_slow, key=lambda item: -item[1]):
            terminalreporter.write_line(f"{seconds:7.2f}s {nodeid}")
