"""The rasp object of a lowered expression, built directly from the tree (no source, no exec).

Used to compile our own search results in-process (tests, benchmark): the functions are the
very callables the search evaluated, and the labels are the names the source uses.
"""

from __future__ import annotations

from typing import Any

from autoconn.inducers.search.dsl import Node, Op
from autoconn.inducers.search.render import assign_names


def to_rasp(root: Node) -> Any:
    """A ``rasp.SOp`` equal in meaning and labels to ``render.to_source(root)``."""
    from tracr.rasp import rasp

    names = assign_names(root)
    built: dict[int, Any] = {}

    def get(node: Node) -> Any:
        return built[id(node)]

    if root.op is Op.TOKENS:
        return rasp.Map(lambda x: x, rasp.tokens).named("program")
    if root.op is Op.INDICES:
        return rasp.Map(lambda x: x, rasp.indices).named("program")
    for node in root.walk():
        op = node.op
        if op is Op.TOKENS:
            built[id(node)] = rasp.tokens
            continue
        if op is Op.INDICES:
            built[id(node)] = rasp.indices
            continue
        kids = [get(c) for c in node.children]
        if op is Op.MAP:
            expr = rasp.Map(node.function.call, kids[0])
        elif op is Op.NUMMAP:
            expr = rasp.numerical(rasp.Map(node.function.call, kids[0]))
        elif op is Op.SEQMAP:
            expr = rasp.SequenceMap(node.function.call, kids[0], kids[1])
        elif op is Op.SELECT:
            pred = rasp.Comparison[node.predicate.comparison] if node.predicate.comparison else node.predicate.lam.call
            expr = rasp.Select(kids[0], kids[1], pred)
        elif op is Op.AGGREGATE:
            expr = rasp.categorical(rasp.Aggregate(kids[0], kids[1]))
        elif op is Op.MEAN:
            expr = rasp.numerical(rasp.Aggregate(kids[0], kids[1], default=0))
        elif op is Op.WIDTH:
            expr = rasp.SelectorWidth(kids[0])
        elif op is Op.LINEAR:
            expr = rasp.numerical(rasp.LinearSequenceMap(kids[0], kids[1], 1, -1))
        else:
            raise ValueError(f"cannot build {op}")
        built[id(node)] = expr.named(names[id(node)])
    return built[id(root)]
