"""`autoconn review` without a browser: the pages hold what the issue lists, from stored files only."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoconn.cli import app
from autoconn.conn.artifact import Library
from autoconn.review.site import NO_GRAPH, build_site
from tests.conftest import FIXTURE_LIBRARY

LIBRARY = FIXTURE_LIBRARY


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = CliRunner().invoke(app, ["review", "--to", str(out), "--out", str(LIBRARY)])
    assert result.exit_code == 0, result.output
    return out


def test_index_lists_every_conn_with_a_link_and_filters(site: Path):
    html = (site / "index.html").read_text()
    names = json.loads((LIBRARY / "index.json").read_text())["conns"]
    for name in names:
        assert f'href="conns/{name}.html"' in html
        assert (site / "conns" / f"{name}.html").exists()
    assert 'id="name-filter"' in html and 'id="kind-filter"' in html


def test_conn_page_has_program_graph_layout_verification_and_heatmaps(site: Path):
    html = (site / "conns" / "reverse.html").read_text()
    assert 'class="highlight"' in html and "SelectorWidth" in html  # highlighted program
    assert 'class="rasp-graph"' in html and "L2 attn head 0" in html and "L1 MLP" in html
    assert 'id="residual"' in html and "opp_index" in html
    proven = Library(LIBRARY).get("reverse").verified_length
    assert f"Proven on inputs up to <b>{proven}</b>" in html and "compiled for <b>16</b>" in html
    assert len(re.findall(r'<svg[^>]*class="heatmap"', html)) >= 2 * 5  # 2 live heads x 5 examples
    assert 'class="sops"' in html
    assert "hand-written" in html  # provenance


def test_entry_without_graph_degrades_with_the_message(site: Path, tmp_path: Path):
    library = tmp_path / "lib"
    shutil.copytree(LIBRARY, library)
    (library / "reverse" / "graph.json").unlink()
    index = build_site(library, tmp_path / "out")
    html = (index.parent / "conns" / "reverse.html").read_text()
    assert NO_GRAPH in html and 'class="heatmap"' in html and 'class="rasp-graph"' not in html


def test_page_reads_the_new_verified_block(tmp_path: Path):
    library = tmp_path / "lib"
    shutil.copytree(LIBRARY, library)
    meta_path = library / "parity" / "conn.json"
    meta = json.loads(meta_path.read_text())
    meta["verified"] = {"how": "oracle", "max_length": 12, "compiled_max_seq_len": 16, "held_out": True,
                        "sealed": {"total": 40, "correct": 40}, "validation_revealed": 3,
                        "oracle": {"lengths": [{"length": 12, "inputs": 4096, "correct": 4096, "exhaustive": True}],
                                   "inputs": 4096, "exhaustive_lengths": [12]}}
    meta_path.write_text(json.dumps(meta))
    index = build_site(library, tmp_path / "out")
    html = (index.parent / "conns" / "parity.html").read_text()
    assert "Proven on inputs up to <b>12</b> tokens (oracle)" in html and "4,096" in html
