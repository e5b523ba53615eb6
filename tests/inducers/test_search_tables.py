"""Functions inferred from the data (tables.py), window reads at offsets, numerical
outputs, exact types and stop reasons -- on small rules written here (none is a suite task)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tracr.rasp import rasp

from autoconn.inducers.search import SearchConfig, SearchInducer, synthesize_task
from autoconn.inducers.search import tables as T
from autoconn.inducers.search.lower import _zero_lam
from autoconn.task import load_task, split_task


def _no_fit(src: list[Any], dst: list[Any]) -> None:
    return None


def _times3(src: list[Any], dst: list[Any]) -> Any:
    return T.lam1(lambda x: x * 3, lambda x: f"{x} * 3") if all(t == 3 * s for s, t in zip(src, dst)) else None


# ---- tables.py on its own -----------------------------------------------------------------

def test_library_function_wins_over_a_table() -> None:
    got = T.infer_unary([0, 1, 2, 3], {0: 0, 1: 3, 2: 6}, [0, 1, 2, 3], _times3)
    assert isinstance(got, T.Inferred) and not got.table
    assert got.lam.call(3) == 9  # generalises to the value no example showed


def test_table_is_total_and_refuses_an_undetermined_entry() -> None:
    cube = {x: x ** 3 for x in (-2, -1, 0, 1)}
    got = T.infer_unary([-2, -1, 0, 1], cube, [-2, -1, 0, 1], _no_fit)
    assert isinstance(got, T.Inferred) and got.table and got.filled == 0
    assert [got.lam.call(x) for x in (-2, -1, 0, 1)] == [-8, -1, 0, 1]
    assert "table from the examples" in got.note
    # 2 is a token (reachable) that no example shows: refused, and the refusal names it.
    refused = T.infer_unary([-2, -1, 0, 1, 2], cube, [-2, -1, 0, 1, 2], _no_fit)
    assert isinstance(refused, T.Refusal) and refused.missing == [2]
    assert "2" in str(refused) and "undetermined" in str(refused)


def test_unreachable_entries_are_filled_and_said() -> None:
    # 7 is in the value set (tracr infers supersets) but no row produces it.
    got = T.infer_unary([0, 1, 7], {0: "a", 1: "b"}, [0, 1], _no_fit)
    assert isinstance(got, T.Inferred) and got.filled == 1
    assert "1 unreachable entry filled by default" in got.note
    assert got.lam.call(7) in ("a", "b")


def test_sentinel_gets_its_own_value() -> None:
    s = T.sentinel_for(["a", "b", "none"])
    assert s not in ("a", "b", "none")
    got = T.infer_unary(["a", "b", s], {"a": "a", "b": "b", s: "_"}, ["a", "b", s], _no_fit, sentinel=s)
    assert isinstance(got, T.Inferred) and not got.table
    assert [got.lam.call(v) for v in ("a", "b", s)] == ["a", "b", "_"]
    assert "else" in got.lam.text("x")


def test_two_argument_function_split_by_rows_generalises() -> None:
    """x + 1 where the flag holds, else x: one function per flag value, not a 2-D table."""
    def fit(src: list[Any], dst: list[Any]) -> Any:
        if all(t == s + 1 for s, t in zip(src, dst)):
            return T.lam1(lambda x: x + 1, lambda x: f"{x} + 1")
        return None

    pairs = {(True, 1): 2, (True, 4): 5, (False, 2): 2, (False, 3): 3}
    reach = [(f, x) for f in (True, False) for x in range(6)]
    got = T.infer_binary([False, True], list(range(6)), pairs, reach, fit, lambda p, d: None)
    assert isinstance(got, T.Inferred) and not got.table
    assert got.lam.call(True, 5) == 6 and got.lam.call(False, 5) == 5


def test_two_argument_table_refuses_reachable_unseen_pairs() -> None:
    pairs = {("a", "a"): 1, ("a", "b"): 2, ("b", "a"): 3}
    reach = [("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")]
    got = T.infer_binary(["a", "b"], ["a", "b"], pairs, reach, _no_fit, lambda p, d: None)
    assert isinstance(got, T.Refusal) and ("b", "b") in got.missing


def test_same_keeps_true_and_one_apart() -> None:
    assert not T.same(True, 1) and not T.same(0, False) and T.same(2, 2.0)


def test_zero_test_of_ints_stays_ints() -> None:
    """(1, 0) == (True, False) in Python: the lowering must not turn 1/0 into True/False."""
    lam = _zero_lam(1, 0)
    assert lam.call(0) == 1 and type(lam.call(0)) is int and type(lam.call(0.5)) is int
    assert _zero_lam(True, False).call(0) is True


# ---- end to end ---------------------------------------------------------------------------

def _task(tmp_path: Path, name: str, rule: Callable[[list[Any]], Any], vocab: list[Any], *, count: int = 80,
          longest: int = 8, seed: int = 0, max_seq_len: int | None = None, drop: Any = None) -> Any:
    rng = random.Random(seed)
    rows, seen = [], set()
    pool = [v for v in vocab if v != drop] if drop is not None else vocab
    while len(rows) < count:
        x = [rng.choice(pool) for _ in range(rng.randint(1, longest))]
        if tuple(x) not in seen:
            seen.add(tuple(x))
            rows.append({"input": x, "output": rule(x)})
    header = {"name": name, "vocab": vocab, "max_seq_len": max_seq_len or longest}
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [header] + rows), encoding="utf-8")
    return load_task(path)


def _check_rasp(task: Any, found: Any, rule: Callable[[list[Any]], Any], vocab: list[Any], seed: int = 5) -> None:
    program = found.to_rasp()
    rng = random.Random(seed)
    for _ in range(40):
        x = [rng.choice(vocab) for _ in range(rng.randint(1, task.max_seq_len))]
        expected = rule(x)
        expected = expected if isinstance(expected, list) else [expected] * len(x)
        got = rasp.evaluate(program, x)
        assert [type(v) for v in got] == [type(v) for v in expected] or task.output_kind == "numerical", (x, got)
        for g, e in zip(got, expected):
            assert (abs(g - e) < 1e-6) if task.output_kind == "numerical" else g == e, (x, got, found.summary)


def _compiled_outputs(task: Any, found: Any, inputs: list[list[Any]]) -> list[Any]:
    from autoconn.conn.compile import compile_program, default_settings
    from autoconn.conn.runtime import ConnRuntime

    model = compile_program(found.to_rasp(), task.input_vocab, default_settings(task.max_seq_len))
    return ConnRuntime.from_model(model, task.max_seq_len).run(inputs)


def test_element_wise_rule_nobody_wrote_is_a_one_layer_table(tmp_path: Path) -> None:
    fib = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55]
    rule = lambda x: [fib[t] for t in x]  # noqa: E731
    task = _task(tmp_path, "fib", rule, list(range(11)))
    found = synthesize_task(task, split_task(task).induction, budget_seconds=20, want=1).found
    assert found and found[0].layers == 1
    assert "table from the examples" in found[0].summary
    _check_rasp(task, found[0], rule, list(range(11)))


def test_table_refused_when_a_token_is_never_shown(tmp_path: Path) -> None:
    """Token 7 is in the vocab but in no example: f(7) is undetermined, so no table over the
    tokens is made, and the search says why."""
    rule = lambda x: [(t * 7 + 3) % 11 if t % 2 else (t * t) % 5 for t in x]  # noqa: E731 - no library function
    task = _task(tmp_path, "scrambled", rule, list(range(10)), drop=7)
    syn = synthesize_task(task, split_task(task).induction, budget_seconds=3, want=1)
    assert not any("{" in f.source and ".get(" in f.source and "program = rasp.Map" in f.source for f in syn.found)
    assert any("7" in r and "undetermined" in r for r in syn.refusals), syn.refusals
    assert "undetermined" in syn.why_stopped or syn.found


@pytest.mark.slow
def test_signed_numerical_table_compiles_with_its_negative_values(tmp_path: Path) -> None:
    """sin of an int: a categorical->numerical Map alone would clip the negative values to 0."""
    rule = lambda x: [math.sin(t) for t in x]  # noqa: E731
    task = _task(tmp_path, "sine", rule, list(range(8)))
    assert task.output_kind == "numerical"
    found = synthesize_task(task, split_task(task).induction, budget_seconds=20, want=1).found
    assert found and "LinearSequenceMap" in found[0].source
    inputs = [[5, 4, 3], [0, 6, 1, 2, 7]]
    for x, got in zip(inputs, _compiled_outputs(task, found[0], inputs)):
        assert all(abs(g - math.sin(t)) < 1e-3 for g, t in zip(got, x)), (x, got)


OFFSET_RULES: dict[str, tuple[Callable[[list[Any]], Any], list[Any], int]] = {
    "two_ahead_or_fill": (lambda x: [x[i + 2] if i + 2 < len(x) else "_" for i in range(len(x))], list("abcd"), 8),
    "two_behind_or_fill": (lambda x: [x[i - 2] if i >= 2 else "_" for i in range(len(x))], list("abcd"), 8),
    "token_at_5_or_fill": (lambda x: [x[5] if len(x) > 5 else "_"] * len(x), list("abcd"), 8),
    "sum_of_last_two": (lambda x: [x[-1] + (x[-2] if len(x) > 1 else 0)] * len(x), list(range(6)), 8),
    "times_next_or_square": (lambda x: [t * (x[i + 1] if i + 1 < len(x) else t) for i, t in enumerate(x)],
                             list(range(5)), 6),
}


@pytest.mark.parametrize("name", sorted(OFFSET_RULES))
def test_offsets_from_either_end(tmp_path: Path, name: str) -> None:
    rule, vocab, longest = OFFSET_RULES[name]
    task = _task(tmp_path, name, rule, vocab, longest=longest, count=90)
    found = synthesize_task(task, split_task(task).induction, budget_seconds=20, want=1).found
    assert found, name
    assert found[0].layers <= 4, found[0].summary  # length, (i, length), the read, the function
    _check_rasp(task, found[0], rule, vocab)


def test_zero_one_output_stays_int(tmp_path: Path) -> None:
    """"Is descending" printed as 0/1: the program must print ints, not booleans."""
    rule = lambda x: [int(all(a >= b for a, b in zip(x, x[1:])))] * len(x)  # noqa: E731
    task = _task(tmp_path, "descending", rule, list(range(6)), count=90)
    found = synthesize_task(task, split_task(task).induction, budget_seconds=20, want=1).found
    assert found
    _check_rasp(task, found[0], rule, list(range(6)))


# ---- why a run stopped --------------------------------------------------------------------

def test_stop_reasons(tmp_path: Path) -> None:
    rng = random.Random(3)
    noise = _task(tmp_path, "noise", lambda x: [rng.choice("xyz") for _ in x], list("abcd"), count=40)
    inducer = SearchInducer()
    spent = inducer.propose(noise, split_task(noise).induction, [], budget_seconds=1.0, limit=1)
    assert spent.candidates == () and spent.usage["stop"] == "budget"
    assert "time budget ran out" in spent.stop_message
    small = SearchInducer(SearchConfig(max_cost=1))
    exhausted = small.propose(noise, split_task(noise).induction, [], budget_seconds=30.0, limit=1)
    assert exhausted.candidates == () and exhausted.usage["stop"] == "exhausted"
    assert "exhausted" in exhausted.stop_message
    easy = _task(tmp_path, "upper", lambda x: [t.upper() for t in x], list("abc"))
    found = inducer.propose(easy, split_task(easy).induction, [], budget_seconds=10.0, limit=1)
    assert found.candidates and found.usage["stop"] == "found" and found.stop_message == ""


COMPOSED_RULES: dict[str, tuple[Callable[[list[Any]], Any], list[Any]]] = {
    # a running count of an attention-derived mark (no equal token before i)
    "distinct_so_far": (lambda x: [len(set(x[: i + 1])) for i in range(len(x))], list("abcd")),
    # two window tests against the own token, joined by an inferred function
    "differs_from_both_neighbours": (lambda x: [int((i == 0 or x[i] != x[i - 1]) and (i == len(x) - 1 or x[i] != x[i + 1]))
                                                for i in range(len(x))], list("abcd")),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(COMPOSED_RULES))
def test_three_step_rules_compose_from_general_pieces(tmp_path: Path, name: str) -> None:
    rule, vocab = COMPOSED_RULES[name]
    task = _task(tmp_path, name, rule, vocab, count=90)
    found = synthesize_task(task, split_task(task).induction, budget_seconds=60, want=1).found
    assert found, name
    _check_rasp(task, found[0], rule, vocab)
