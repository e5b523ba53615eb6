"""The search's numpy semantics equal rasp.evaluate, and its value sets equal tracr's own
basis inference (which decides the compiled MLP sizes and what tracr calls functions on)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from tracr.compiler import basis_inference, nodes, rasp_to_graph
from tracr.rasp import rasp

from autoconn.inducers.search import primitives as P
from autoconn.inducers.search.build import to_rasp
from autoconn.inducers.search.dsl import INDICES, TOKENS, Node, Op, make
from autoconn.inducers.search.evaluate import Batch, Evaluator, NumSem, Sem
from autoconn.inducers.search.lower import lower

MAX_SEQ_LEN = 8
LETTERS = ["a", "b", "c"]
DIGITS = [0, 1, 2, 3]


def select(k: Node, q: Node, pred: str | P.Pred) -> Node:
    return make(Op.SELECT, (k, q), pred=P.BY_NAME[pred] if isinstance(pred, str) else pred)


def length() -> Node:
    return make(Op.WIDTH, (select(TOKENS, TOKENS, "TRUE"),))


def reverse() -> Node:
    opp = make(Op.MAP, (make(Op.SEQMAP, (length(), INDICES), P.INT_BINARY[1].lam),), P.add_c(-1))
    return make(Op.AGGREGATE, (select(INDICES, opp, "EQ"), TOKENS))


def programs() -> dict[str, tuple[Node, list[Any]]]:
    is_a = make(Op.MAP, (TOKENS,), P.eq_c("a"))
    hist = make(Op.WIDTH, (select(TOKENS, TOKENS, "EQ"),))
    prev = make(Op.MAP, (make(Op.MAP, (INDICES,), P.add_c(-1)),), P.max_c(0))
    tok_idx = make(Op.SEQMAP, (TOKENS, INDICES), P.TUPLE.lam)
    larger = make(Op.WIDTH, (select(TOKENS, TOKENS, "GT"),))
    return {
        "map_chain": (make(Op.MAP, (make(Op.MAP, (TOKENS,), P.add_c(1)),), P.mod_c(3)), DIGITS),
        "seqmap": (make(Op.SEQMAP, (TOKENS, INDICES), P.INT_BINARY[0].lam), DIGITS),
        "reverse": (reverse(), LETTERS),
        "hist": (hist, LETTERS),
        "count_a": (make(Op.WIDTH, (select(is_a, TOKENS, P.KEY_TRUE),)), LETTERS),
        "shift_fill": (make(Op.SEQMAP, (make(Op.MAP, (INDICES,), P.eq_c(0)),
                                        make(Op.AGGREGATE, (select(INDICES, prev, "EQ"), TOKENS))),
                                P.const_else("_").lam), LETTERS),
        "first_seen": (make(Op.WIDTH, (select(tok_idx, tok_idx, P.PRODUCT[0]),)), LETTERS),
        "max_of_ints": (make(Op.AGGREGATE, (select(make(Op.MAP, (larger,), P.eq_c(0)), TOKENS, P.KEY_TRUE), TOKENS)),
                        DIGITS),
        "frac_prevs": (make(Op.MEAN, (select(INDICES, INDICES, "LEQ"), make(Op.NUMMAP, (is_a,), P.TO_INT))),
                       LETTERS),
        "compare_counts": (make(Op.SEQMAP, (hist, length()), P.compare3("more", "less", "same").lam), LETTERS),
    }


def random_inputs(vocab: list[Any], count: int, seed: int = 0) -> list[list[Any]]:
    rng = random.Random(seed)
    return [[rng.choice(vocab) for _ in range(rng.randint(1, MAX_SEQ_LEN))] for _ in range(count)]


@pytest.mark.parametrize("name", sorted(programs()))
def test_numpy_semantics_equal_rasp_evaluate(name: str) -> None:
    node, vocab = programs()[name]
    inputs = random_inputs(vocab, 40)
    batch = Batch.build(inputs, vocab, MAX_SEQ_LEN, synthetic=0)
    batch.n_induction = 0  # every row may be "bad"; none is rejected
    ev = Evaluator(batch, vocab, MAX_SEQ_LEN)
    sem = ev.evaluate(node)
    assert isinstance(sem, (Sem, NumSem))
    program = to_rasp(lower(node))
    for row, x in enumerate(inputs):
        expected = rasp.evaluate(program, x)
        if sem.bad is not None and sem.bad[row]:
            assert None in expected or name in ("shift_fill",), (x, expected)
            continue
        got = ev.decode(sem, row)
        if isinstance(sem, NumSem):
            assert np.allclose(got, expected), (x, got, expected)
        else:
            assert got == expected, (x, got, expected)


def test_categorical_aggregate_needs_one_value() -> None:
    """Several selected positions with different values: rejected on induction rows."""
    vocab = LETTERS
    batch = Batch.build([["a", "b"], ["c"]], vocab, 4, synthetic=0)
    ev = Evaluator(batch, vocab, 4)
    everything = ev.select(P.BY_NAME["TRUE"], ev.tokens, ev.tokens)
    assert ev.aggregate(everything, ev.tokens) is None
    digits = Batch.build([[2, 2], [1]], DIGITS, 4, synthetic=0)
    ev = Evaluator(digits, DIGITS, 4)
    everything = ev.select(P.BY_NAME["TRUE"], ev.tokens, ev.tokens)
    assert ev.aggregate(everything, ev.tokens) is not None  # equal ints: exact in tracr


def test_functions_must_be_total_on_the_value_set() -> None:
    """tracr calls a Map on every value of its input's value set, seen or not."""
    batch = Batch.build([[1, 2]], DIGITS, 4, synthetic=0)
    ev = Evaluator(batch, DIGITS, 4)
    reciprocal = P.lam1(lambda x: 12 // x, lambda x: f"12 // {x}")  # fails at 0, which is never seen
    assert ev.map(reciprocal, ev.tokens) is None
    none_somewhere = P.lam1(lambda x: None if x == 3 else x, lambda x: "...")
    assert ev.map(none_somewhere, ev.tokens) is None
    guarded = P.INT_BINARY[7].lam  # x % y if y else 0
    assert ev.seqmap(guarded, ev.tokens, ev.indices) is not None


def _tracr_value_sets(program: rasp.SOp, vocab: list[Any], max_seq_len: int) -> dict[str, set[Any]]:
    extracted = rasp_to_graph.extract_rasp_graph(program)
    basis_inference.infer_bases(extracted.graph, extracted.sink, set(vocab), max_seq_len)
    return {extracted.graph.nodes[n][nodes.EXPR].label: extracted.graph.nodes[n][nodes.VALUE_SET]
            for n in extracted.graph.nodes if nodes.VALUE_SET in extracted.graph.nodes[n]}


@pytest.mark.parametrize("name", ["map_chain", "seqmap", "reverse", "hist", "compare_counts", "first_seen"])
def test_value_sets_equal_tracr_inference(name: str) -> None:
    node, vocab = programs()[name]
    lowered = lower(node)
    program = to_rasp(lowered)
    tracr_sets = _tracr_value_sets(program, vocab, MAX_SEQ_LEN)
    batch = Batch.build(random_inputs(vocab, 5), vocab, MAX_SEQ_LEN, synthetic=0)
    ev = Evaluator(batch, vocab, MAX_SEQ_LEN)
    sem = ev.evaluate(lowered)
    assert isinstance(sem, Sem)
    ours = set(ev.values(sem.vset))
    assert ours == tracr_sets[program.label], (ours, tracr_sets[program.label])
