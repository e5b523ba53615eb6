"""`autoconn set-fusion` and `autoconn fuse`: real library copies, real HTTP for --lm openai."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from autoconn.cli import app
from tests.fusion.test_text_level import StoppingModel
from tests.support.openai_server import OpenAIServer


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def conn_json(library: Path, name: str) -> dict:
    return json.loads((library / name / "conn.json").read_text())


def test_register_replaces_the_fusion_spec_and_the_index_summary(library_copy: Path):
    before_program = (library_copy / "sort" / "program.py").read_text()
    result = invoke("set-fusion", "sort", "--trigger", " =>", "--operand-start", "SORT[", "--output-join", " ",
                    "--out", str(library_copy), "--json")
    assert result.exit_code == 0, result.stderr
    fusion = conn_json(library_copy, "sort")["fusion"]
    assert fusion == json.loads(result.stdout)["fusion"]
    assert (fusion["operand_start"], fusion["trigger"], fusion["split"], fusion["output"]) == \
        ("SORT[", " =>", "char", {"positions": "all", "join": " "})
    assert fusion["token_map"] == {str(d): d for d in range(6)}
    index = json.loads((library_copy / "index.json").read_text())["conns"]
    assert index["sort"]["fusion"] == {"operand_start": "SORT[", "trigger": " =>", "split": "char"}
    assert index["reverse"]["fusion"]["operand_start"] == "reverse("  # other entries untouched
    assert (library_copy / "sort" / "program.py").read_text() == before_program
    reset = invoke("set-fusion", "sort", "--out", str(library_copy))  # no flags: back to the defaults
    assert reset.exit_code == 0 and conn_json(library_copy, "sort")["fusion"]["trigger"] == ")="


def test_register_refuses_bad_specs_and_writes_nothing(library_copy: Path):
    before = (library_copy / "sort" / "conn.json").read_text()
    index_before = (library_copy / "index.json").read_text()
    for args, message in [(["--trigger", "2)"], "can be written with operand text"),
                          (["--split", "space", "--trigger", ""], "trigger is empty"),
                          (["--output-positions", "middle"], "choose all, first or last")]:
        result = invoke("set-fusion", "sort", *args, "--out", str(library_copy))
        assert result.exit_code == 2 and message in result.stderr, result.stderr
    missing = invoke("set-fusion", "nope", "--out", str(library_copy))
    assert missing.exit_code == 2 and "no CoNN named 'nope'" in missing.stderr
    assert (library_copy / "sort" / "conn.json").read_text() == before
    assert (library_copy / "index.json").read_text() == index_before


def test_register_notes_a_clash_and_fuse_refuses_it(library_copy: Path):
    noted = invoke("set-fusion", "copy", "--operand-start", "reverse(", "--out", str(library_copy))
    assert noted.exit_code == 0 and "'reverse' uses the same operand start and trigger" in noted.stderr
    refused = invoke("fuse", "--conn", "copy", "--conn", "reverse", "--lm", "openai", "--model", "m",
                     "--base-url", "http://127.0.0.1:9/v1", "--out", str(library_copy), "x")
    assert refused.exit_code == 2 and "both use operand start 'reverse('" in refused.stderr


def test_fuse_refuses_unknown_conns_and_missing_flags(library_copy: Path):
    unknown = invoke("fuse", "--conn", "nope", "--out", str(library_copy), "x")
    assert unknown.exit_code == 2 and "no CoNN named 'nope'" in unknown.stderr
    none = invoke("fuse", "--out", str(library_copy), "x")
    assert none.exit_code == 2 and "--conn" in none.stderr
    bad_lm = invoke("fuse", "--conn", "sort", "--lm", "gpt", "--out", str(library_copy), "x")
    assert bad_lm.exit_code == 2 and "choose demo or openai" in bad_lm.stderr


def test_fuse_with_a_chat_model_over_http_prints_spans_as_json(library_copy: Path):
    with OpenAIServer(StoppingModel("sort(312)=0 and length(abc)=0.", " and length(abc)=0.", ".")) as server:
        result = invoke("fuse", "--conn", "sort", "--conn", "length", "--lm", "openai", "--model", "test-model",
                        "--base-url", server.base_url, "--json", "--out", str(library_copy), "sort then count")
        sent = server.chat_requests()
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["completion"] == "sort(312)=123 and length(abc)=3."
    assert [(s["conn"], s["text"]) for s in data["spans"]] == [("sort", "123"), ("length", "3")]
    assert data["fallbacks"] == [] and data["conns"] == ["sort", "length"] and data["lm"] == "openai"
    assert sent[0]["model"] == "test-model" and sent[0]["stop"] == [")="]


def test_fuse_plain_output_marks_conn_text_on_stderr(library_copy: Path):
    with OpenAIServer(StoppingModel("sort(21)=9", ".")) as server:
        result = invoke("fuse", "--conn", "sort", "--lm", "openai", "--model", "test-model",
                        "--base-url", server.base_url, "--out", str(library_copy), "go")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "sort(21)=12."
    assert "sort wrote '12'" in result.stderr


def test_fuse_without_a_configured_model_is_a_usage_error(library_copy: Path, monkeypatch):
    monkeypatch.delenv("AUTOCONN_MODEL", raising=False)
    result = invoke("fuse", "--conn", "sort", "--lm", "openai", "--out", str(library_copy), "go")
    assert result.exit_code == 2 and "no model configured" in result.stderr
