"""The lint (AST only) catches the primer's named mistakes and never stops a right program."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoconn.inducers.base import Counterexample, Feedback
from autoconn.inducers.llm.diagnose import clean, diagnose, type_slip
from autoconn.inducers.llm.lint import lint
from tests.conftest import FIXTURE_LIBRARY, REPO

H = "from tracr.rasp import rasp\nfrom tracr.compiler import lib\n"
RIGHT_PROGRAMS = sorted((REPO / "rule_examples" / "reference").glob("*.py")) + sorted(FIXTURE_LIBRARY.glob("*/program.py"))


@pytest.mark.parametrize("path", RIGHT_PROGRAMS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_right_programs_pass_the_lint(path: Path):
    assert lint(path.read_text(encoding="utf-8"), max_seq_len=16) == []


@pytest.mark.parametrize("source, rule", [
    (H + "n = rasp.length\nprogram = rasp.Map(lambda x: x, rasp.tokens)\n", 12),
    (H + "s = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)\n"
         "t = s | rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LT)\n"
         "program = rasp.SelectorWidth(t)\n", 6),
    (H + "s = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)"
         " & rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LT)\n"
         "program = rasp.SelectorWidth(s)\n", 6),
    (H + "a = rasp.numerical(rasp.Map(lambda t: 1, rasp.tokens))\n"
         "program = rasp.SequenceMap(lambda x, y: x + y, a, rasp.indices)\n", 5),
    (H + "m = rasp.SequenceMap(lambda x, y: x, rasp.tokens, rasp.indices)\nprogram = rasp.numerical(m)\n", 5),
    (H + "a = rasp.numerical(rasp.Map(lambda t: 1, rasp.tokens))\n"
         "program = rasp.SelectorWidth(rasp.Select(a, rasp.indices, rasp.Comparison.EQ))\n", 1),
    (H + "program = rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.EQ), rasp.tokens, default=0)\n", 2),
    (H + "x = rasp.Map(lambda t: 1, rasp.tokens)\n"
         "program = rasp.numerical(rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ),"
         " x, default=0))\n", 3),
    (H + "x = rasp.numerical(rasp.Map(lambda t: 1, rasp.tokens))\n"
         "program = rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ), x)\n", 7),
    (H + "program = rasp.Map(lambda i: i, rasp.indices)\n", 13),
    (H + "program = lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5, min_key=1)\n", 11),
])
def test_named_mistakes_are_caught_with_their_rule(source: str, rule: int):
    assert rule in [p.rule for p in lint(source, max_seq_len=10)]


def test_an_aggregate_declared_numerical_later_is_not_flagged():
    source = (H + "x = rasp.numerical(rasp.Map(lambda t: 1 if t == 'a' else 0, rasp.tokens))\n"
              "agg = rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ), x, default=0)\n"
              "program = rasp.numerical(agg)\n")
    assert lint(source) == []


def test_a_numerical_copy_leaves_the_original_categorical():
    source = (H + "a = rasp.Map(lambda t: 1 if t == 'a' else 0, rasp.tokens)\nb = rasp.numerical(a)\n"
              "program = rasp.SelectorWidth(rasp.Select(a, rasp.indices, rasp.Comparison.EQ))\n")
    assert lint(source) == []  # rasp.numerical(x) returns an annotated copy; x stays categorical


def test_lint_never_runs_the_code(tmp_path: Path):
    marker = tmp_path / "ran"
    source = f"import os\nos.system('touch {marker}')\nfrom tracr.rasp import rasp\nprogram = rasp.length\n"
    assert 12 in [p.rule for p in lint(source)] and not marker.exists()


def test_addresses_are_stripped_and_type_slips_told_apart():
    text = clean("TypeError: Compiling composite Selectors is not supported. "
                 "Got a <tracr.rasp.rasp.SelectorOr object at 0x7f62a1b2c3d0>.")
    assert text == "TypeError: Compiling composite Selectors is not supported. Got a SelectorOr."
    slip = (Counterexample(("a", "b"), (0, 1), (False, True)),)
    assert type_slip(slip) == "bool instead of int"
    assert type_slip((Counterexample(("a",), (1,), (2,)),)) == ""
    found = diagnose(Feedback("s", "check", "wrong on 1 of 4", slip))
    assert found.rule == 10 and "1 if condition else 0" in found.fix
    assert diagnose(Feedback("s", "compile", "ValueError: Unsupported S-Op: length")).rule == 12
