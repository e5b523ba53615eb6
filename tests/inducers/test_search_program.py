"""From a found expression to a program: folding Maps, tracr's layer count, readable source
that means the same as the tree-built rasp object, and a compiled model that agrees."""

from __future__ import annotations

import ast
import random
from typing import Any

import pytest
from tracr.rasp import rasp

from autoconn.conn.compile import compile_program, default_settings, model_size
from autoconn.conn.runtime import ConnRuntime
from autoconn.inducers.search import primitives as P
from autoconn.inducers.search.build import to_rasp
from autoconn.inducers.search.dsl import INDICES, TOKENS, Op, make
from autoconn.inducers.search.lower import lower, tracr_layers
from autoconn.inducers.search.render import to_source

try:  # pytest puts this folder on sys.path while it has no __init__.py
    from test_search_semantics import LETTERS, length, programs, random_inputs, reverse, select
except ImportError:  # pragma: no cover - the same module inside a tests.inducers package
    from tests.inducers.test_search_semantics import LETTERS, length, programs, random_inputs, reverse, select


def exec_source(source: str) -> Any:
    """Tests only: run an emitted candidate to get its `program`."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<candidate>", "exec"), namespace)  # noqa: S102 - our own output, in a test
    return namespace["program"]


def test_maps_fold_into_selects_and_sequence_maps() -> None:
    lowered = lower(reverse())
    # Map(x - 1) after the SequenceMap is part of its function; no Map node is left.
    assert not any(n.op is Op.MAP for n in lowered.walk())
    shifted = make(Op.AGGREGATE, (select(INDICES, make(Op.MAP, (INDICES,), P.add_c(-1)), "EQ"), TOKENS))
    sel = lower(shifted).children[0]
    assert sel.op is Op.SELECT and all(c.op is Op.INDICES for c in sel.children)
    assert sel.pred.comparison is None and "q - 1" in sel.pred.lam.text("k", "q")
    # A Map of the moved value moves after the Aggregate (same layer as the attention).
    upper = make(Op.AGGREGATE, (select(INDICES, INDICES, "EQ"), make(Op.MAP, (TOKENS,), P.UPPER)))
    assert lower(upper).op is Op.MAP and lower(upper).children[0].op is Op.AGGREGATE


def test_programs_without_tokens_read_them() -> None:
    """tracr refuses a program whose graph has no rasp.tokens."""
    for node in (INDICES, make(Op.WIDTH, (select(INDICES, INDICES, "GT"),))):
        assert any(n.op is Op.TOKENS for n in lower(node).walk())


@pytest.mark.parametrize("name", sorted(programs()))
def test_source_and_tree_agree(name: str) -> None:
    node, vocab = programs()[name]
    lowered = lower(node)
    source = to_source(lowered, header="test")
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(i, ast.ImportFrom) and i.module == "tracr.rasp" for i in imports)
    assigned = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
    assert assigned[-1] == "program" and len(assigned) == len(set(assigned))
    from_source, from_tree = exec_source(source), to_rasp(lowered)
    assert from_source.name == from_tree.name == "program"
    for x in random_inputs(vocab, 30, seed=1):
        assert rasp.evaluate(from_source, x) == rasp.evaluate(from_tree, x)


COMPILED = {  # name -> expected layers (each also checked against tracr_layers)
    "reverse": 3,
    "shift_fill": 1,
    "first_seen": 2,
    "compare_counts": 2,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(COMPILED))
def test_compiled_model_matches_and_layers_are_predicted(name: str) -> None:
    node, vocab = programs()[name]
    lowered = lower(node)
    max_seq_len = 8
    model = compile_program(to_rasp(lowered), vocab, default_settings(max_seq_len))
    assert model_size(model).layers == tracr_layers(lowered) == COMPILED[name]
    runtime = ConnRuntime.from_model(model, max_seq_len)
    inputs = random_inputs(vocab, 40, seed=2) + [[vocab[0]] * max_seq_len]
    reference = to_rasp(lowered)
    for x, got in zip(inputs, runtime.run(inputs)):
        assert got == rasp.evaluate(reference, x), x


def test_layer_count_follows_tracr_allocation() -> None:
    """Without compiling: Maps before attention cost a layer, after it they do not."""
    hist = make(Op.WIDTH, (select(TOKENS, TOKENS, "EQ"),))
    assert tracr_layers(lower(hist)) == 1
    assert tracr_layers(lower(make(Op.MAP, (hist,), P.mod_c(2)))) == 2  # SelectorWidth's MLP, then another
    assert tracr_layers(lower(make(Op.MAP, (TOKENS,), P.UPPER))) == 1
    assert tracr_layers(lower(length())) == 1
    moved = make(Op.AGGREGATE, (select(INDICES, INDICES, "EQ"), make(Op.MAP, (TOKENS,), P.UPPER)))
    assert tracr_layers(lower(moved)) == 1


def test_random_programs_render_and_build_alike() -> None:
    """Random compositions of the library: source and tree agree wherever both evaluate."""
    rng = random.Random(3)
    pools = P.Pools.from_task(LETTERS, LETTERS, 8)
    unary = [f for f in P.unary_library(LETTERS, pools, outputs=True)] + [P.eq_c("b")]
    for _ in range(20):
        node = make(Op.MAP, (TOKENS,), rng.choice(unary))
        if rng.random() < 0.5:
            node = make(Op.AGGREGATE, (select(INDICES, make(Op.MAP, (INDICES,), P.add_c(rng.choice([0, 1]))), "EQ"),
                                       TOKENS))
        lowered = lower(node)
        a, b = exec_source(to_source(lowered)), to_rasp(lowered)
        for x in random_inputs(LETTERS, 10, seed=rng.randint(0, 99)):
            assert rasp.evaluate(a, x) == rasp.evaluate(b, x)
