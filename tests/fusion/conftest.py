"""Fusion test fixtures: the committed library's CoNNs (loaded once, jitted once) and a bigram LM."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autoconn.conn.artifact import Library
from autoconn.fusion.conn_tool import FusedConn, load_fused_conns
from tests.conftest import FIXTURE_LIBRARY
from tests.fusion.bigram import BigramLM

LIBRARY = FIXTURE_LIBRARY


@pytest.fixture(scope="session")
def library_conns() -> dict[str, FusedConn]:
    """sort, length, reverse and parity from the fixture library, with their stored fusion specs."""
    return {c.name: c for c in load_fused_conns(["sort", "length", "reverse", "parity"], Library(LIBRARY))}


@pytest.fixture
def lm() -> BigramLM:
    return BigramLM()


@pytest.fixture
def library_copy(tmp_path: Path) -> Path:
    """A writable copy of the committed library (register tests change it)."""
    target = tmp_path / "lib"
    shutil.copytree(LIBRARY, target, ignore=shutil.ignore_patterns(".index.lock"))
    return target
