"""The generic building blocks (search/blocks.py): their numpy semantics equal rasp.evaluate
and the plain-Python rule they stand for, the lowering rules they rely on (nested
SequenceMaps folded, zero tests of counts made numerical means) keep the meaning and save
layers, and the compiled models agree with rasp.evaluate."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from tracr.rasp import rasp

from autoconn.conn.compile import compile_program, default_settings
from autoconn.conn.runtime import ConnRuntime
from autoconn.inducers.search import blocks as B
from autoconn.inducers.search import primitives as P
from autoconn.inducers.search.build import to_rasp
from autoconn.inducers.search.dsl import TOKENS, Node, Op, make
from autoconn.inducers.search.evaluate import Batch, Evaluator, Sem
from autoconn.inducers.search.lower import _lower_plain, lower, tracr_layers
from autoconn.inducers.search.render import to_source

L = 8
AB = ["a", "b"]
ABC = ["a", "b", "c"]
DIGITS = [0, 1, 2, 3]


def token_test(fn: P.Lam) -> Node:
    return make(Op.MAP, (TOKENS,), fn)


def tally(c: Any) -> Node:
    return make(Op.WIDTH, (make(Op.SELECT, (token_test(P.eq_c(c)), TOKENS), pred=P.KEY_TRUE),))


def hist() -> Node:
    return make(Op.WIDTH, (make(Op.SELECT, (TOKENS, TOKENS), pred=P.BY_NAME["EQ"]),))


def is_a() -> Node:
    return token_test(P.eq_c("a"))


def balance() -> Node:
    return B.prefix_balance(is_a(), L)


def carry_like() -> Node:
    """'y' at i when the nearest non-'c' token right of i is an 'a', else the own token."""
    combine = B.case_combine({True: P.const("y"), False: P.lam1(lambda x: x, lambda x: x)},
                             P.lam1(lambda x: x, lambda x: x))
    return B.nearest_read(token_test(P.ne_c("c")), is_a(), "right", combine)


def records() -> Node:
    """Positions whose digit is larger than every earlier one (no earlier one is >=)."""
    return make(Op.MAP, (B.dominance_counts()[0],), P.eq_c(0))


def running_max() -> Node:
    own = P.lam1(lambda x: x, lambda x: x)
    return B.nearest_read(records(), TOKENS, "left", B.read_or(own), inclusive=True)


# name -> (block, vocab, the rule in plain Python)
def _running_balance(x: list[Any]) -> list[int]:
    out, s = [], 0
    for t in x:
        s += 1 if t == "a" else -1
        out.append(s)
    return out


def _never_negative(x: list[Any]) -> list[bool]:
    out, ok = [], True
    for s in _running_balance(x):
        ok = ok and s >= 0
        out.append(ok)
    return out


def _balanced_prefix(x: list[Any]) -> list[bool]:
    return [ok and s == 0 for ok, s in zip(_never_negative(x), _running_balance(x))]


def _balanced(x: list[Any]) -> list[bool]:
    return [all(_never_negative(x)) and x.count("a") == x.count("b")] * len(x)


def _most_frequent(x: list[Any]) -> list[Any]:
    return [min(set(x), key=lambda t: (-x.count(t), t))] * len(x)


def _least_frequent_int(x: list[Any]) -> list[Any]:
    return [max(set(x), key=lambda t: (-x.count(t), t))] * len(x)


def _carry_like(x: list[Any]) -> list[Any]:
    out = []
    for i, t in enumerate(x):
        nxt = next((u for u in x[i + 1:] if u != "c"), None)
        out.append("y" if nxt == "a" else t)
    return out


BLOCKS: dict[str, tuple[Callable[[], Node], list[Any], Callable[[list[Any]], list[Any]]]] = {
    "prefix_count": (lambda: B.prefix_count(is_a(), L), ABC,
                     lambda x: [x[: i + 1].count("a") for i in range(len(x))]),
    "prefix_balance": (balance, AB, _running_balance),
    "balance_offset": (lambda: B.balance_offset(is_a()), AB,
                       lambda x: [s + x.count("b") for s in _running_balance(x)]),
    "never_negative": (lambda: B.quantified(balance(), P.lt_c(0), "prefix", some=False), AB, _never_negative),
    "some_negative_later": (lambda: B.quantified(balance(), P.lt_c(0), "suffix", some=True), AB,
                            lambda x: [any(s < 0 for s in _running_balance(x)[i:]) for i in range(len(x))]),
    "balanced_prefix": (lambda: B.quantified(balance(), P.lt_c(0), "prefix", some=False, own=P.eq_c(0)), AB,
                        _balanced_prefix),
    "balanced": (lambda: B.none_related(B.balance_offset(is_a()), tally("b"), P.BY_NAME["LT"],
                                        guard=(tally("a"), P.EQ2.lam)), AB, _balanced),
    "most_frequent": (lambda: B.argmax_read(hist(), ABC, largest=True, ties_to_smallest=True, int_tokens=False),
                      ABC, _most_frequent),
    "least_frequent_int": (lambda: B.argmax_read(hist(), DIGITS, largest=False, ties_to_smallest=False,
                                                 int_tokens=True), DIGITS, _least_frequent_int),
    "nearest_right": (carry_like, ABC, _carry_like),
    "records": (records, DIGITS, lambda x: [all(x[k] < t for k in range(j)) for j, t in enumerate(x)]),
    "running_max": (running_max, DIGITS, lambda x: [max(x[: i + 1]) for i in range(len(x))]),
}


def random_inputs(vocab: list[Any], count: int, seed: int = 0, longest: int = L) -> list[list[Any]]:
    rng = random.Random(seed)
    return [[rng.choice(vocab) for _ in range(rng.randint(1, longest))] for _ in range(count)]


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_semantics_equal_rule_and_rasp_evaluate(name: str) -> None:
    build, vocab, rule = BLOCKS[name]
    node = build()
    inputs = random_inputs(vocab, 60, seed=len(name))
    batch = Batch.build(inputs, vocab, L, synthetic=0)
    ev = Evaluator(batch, vocab, L)
    sem = ev.evaluate(node)
    assert isinstance(sem, Sem), "the evaluator rejected the block"
    assert sem.bad is None or not sem.bad.any(), "a categorical Aggregate did not pick exactly one position"
    program = to_rasp(lower(node))
    for row, x in enumerate(inputs):
        expected = rule(x)
        assert ev.decode(sem, row) == expected, (x, ev.decode(sem, row), expected)
        assert rasp.evaluate(program, x) == expected, (x, rasp.evaluate(program, x), expected)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_emitted_source_means_the_same_as_the_tree(name: str) -> None:
    """The candidate file (what the sandbox compiles) equals the in-process rasp object."""
    build, vocab, rule = BLOCKS[name]
    lowered = lower(build())
    namespace: dict[str, Any] = {}
    exec(compile(to_source(lowered, header=name), "<candidate>", "exec"), namespace)  # noqa: S102 - our own output
    for x in random_inputs(vocab, 30, seed=11):
        assert rasp.evaluate(namespace["program"], x) == rule(x), x


def test_nested_sequence_maps_fold_into_one() -> None:
    """f(g(count, indices), indices) is one SequenceMap of count and indices: one MLP."""
    node = B.quantified(balance(), P.lt_c(0), "prefix", some=False, own=P.eq_c(0))
    lowered = _lower_plain(node)
    for n in lowered.walk():
        if n.op is Op.SEQMAP:
            assert not any(c.op is Op.SEQMAP and set(c.children) & set(n.children) for c in n.children)


def test_zero_tests_of_counts_become_means_only_when_that_saves_a_layer() -> None:
    node = B.quantified(balance(), P.lt_c(0), "prefix", some=False, own=P.eq_c(0))
    plain, best = _lower_plain(node), lower(node)
    assert any(n.op is Op.MEAN for n in best.walk())
    assert tracr_layers(best) == tracr_layers(plain) - 1 == 4
    # A count used as a number stays a SelectorWidth.
    assert not any(n.op is Op.MEAN for n in lower(B.prefix_count(is_a(), L)).walk())


def test_argmax_keeps_the_int_code_before_the_aggregate() -> None:
    """Several winners hold the same token: the Aggregate must read an int (exact under
    both tracr and rasp.evaluate), so the code Map is not moved after it."""
    lowered = lower(BLOCKS["most_frequent"][0]())
    aggregate = next(n for n in lowered.walk() if n.op is Op.AGGREGATE)
    assert aggregate.children[1].op is Op.MAP and not aggregate.children[1].fn.movable


@pytest.mark.slow
@pytest.mark.parametrize("name", ["balanced_prefix", "balanced", "most_frequent", "nearest_right", "running_max"])
def test_compiled_blocks_agree_with_rasp_evaluate(name: str) -> None:
    build, vocab, rule = BLOCKS[name]
    program = to_rasp(lower(build()))
    model = compile_program(program, vocab, default_settings(L))
    runtime = ConnRuntime.from_model(model, L)
    inputs = random_inputs(vocab, 40, seed=3)
    for x, got in zip(inputs, runtime.run(inputs)):
        assert list(got) == rule(x), (x, got)


def test_sign_tests_are_total_and_boolean() -> None:
    for fn in P.sign_tests():
        assert {type(fn.call(v)) for v in range(-16, 33)} == {bool}
    assert np.all([P.INT_COMPARISONS[2].lam.call(1, 2), P.INT_COMPARISONS[4].lam.call(2, 1)])
