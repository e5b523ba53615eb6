"""Readable RASP source for a lowered expression: one named intermediate per line.

The names are chosen once (:func:`assign_names`) and used both here and by
``build.to_rasp``, so the emitted source and the in-process rasp object have the same
labels, and therefore the same compiled graph.
"""

from __future__ import annotations

import re

from autoconn.inducers.search.dsl import Node, Op
from autoconn.inducers.search.lower import is_length

MAX_NAME = 28
BUILTIN = {Op.TOKENS: "rasp.tokens", Op.INDICES: "rasp.indices"}
_SHORT = {"tokens": "tok", "indices": "idx"}


def _clean(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()
    if not text or text[0].isdigit():
        text = "v_" + text
    return text


def assign_names(root: Node, root_name: str = "program") -> dict[int, str]:
    """A unique, descriptive Python identifier (and rasp label) for every non-input node."""
    names: dict[int, str] = {}
    taken: set[str] = {"rasp", "lib", "program", "tokens", "indices"}
    counters: dict[str, int] = {}

    def short(node: Node) -> str:
        if node.op is Op.TOKENS:
            return "tokens"
        if node.op is Op.INDICES:
            return "indices"
        return names[id(node)]

    def base(node: Node) -> str:
        op, kids = node.op, node.children
        if is_length(node):
            return "length"
        if op in (Op.MAP, Op.NUMMAP):
            return f"{short(kids[0])}_{node.fn.slug}" if node.fn.slug else f"f_{short(kids[0])}"
        if op is Op.SEQMAP:
            slug = node.fn.slug or "with"
            return f"{short(kids[0])}_{slug}_{short(kids[1])}"
        if op is Op.SELECT:
            k, q = (short(c) for c in kids)
            how = node.pred.comparison.lower() if node.pred.comparison else "where"
            return f"select_{_SHORT.get(k, k)}_{how}_{_SHORT.get(q, q)}"
        if op is Op.AGGREGATE:
            sel = kids[0]
            what = short(kids[1])
            if sel.children[0].op is Op.INDICES and sel.pred.comparison == "EQ":
                return f"{what}_at_{short(sel.children[1])}"
            return f"{what}_picked"
        if op is Op.MEAN:
            return f"frac_{short(kids[1])}"
        if op is Op.WIDTH:
            sel = kids[0]
            k, q = (short(c) for c in sel.children)
            if sel.pred.comparison == "EQ" and k == q:
                return f"hist_{k}" if k != "tokens" else "hist"
            how = sel.pred.comparison.lower() if sel.pred.comparison else "where"
            return f"count_{_SHORT.get(k, k)}_{how}_{_SHORT.get(q, q)}"
        return op.value

    for node in root.walk():
        if node.op in BUILTIN:
            continue
        if node is root:
            names[id(node)] = root_name
            continue
        name = _clean(base(node))
        if len(name) > MAX_NAME:
            name = {Op.MAP: "mapped", Op.SEQMAP: "combined", Op.SELECT: "select", Op.AGGREGATE: "moved",
                    Op.WIDTH: "count", Op.MEAN: "frac", Op.NUMMAP: "indicator"}.get(node.op, "value")
        if name in taken:
            counters[name] = counters.get(name, 1) + 1
            while f"{name}_{counters[name]}" in taken:
                counters[name] += 1
            name = f"{name}_{counters[name]}"
        taken.add(name)
        names[id(node)] = name
    return names


def _ref(node: Node, names: dict[int, str]) -> str:
    return BUILTIN.get(node.op) or names[id(node)]


def expression(node: Node, names: dict[int, str]) -> str:
    """The right-hand side that defines one node, referring to its children by name."""
    op, kids = node.op, [_ref(c, names) for c in node.children]
    if op is Op.MAP:
        return f"rasp.Map({node.fn.source('x')}, {kids[0]})"
    if op is Op.NUMMAP:
        return f"rasp.numerical(rasp.Map({node.fn.source('x')}, {kids[0]}))"
    if op is Op.SEQMAP:
        return f"rasp.SequenceMap({node.fn.source('x', 'y')}, {kids[0]}, {kids[1]})"
    if op is Op.SELECT:
        pred = f"rasp.Comparison.{node.pred.comparison}" if node.pred.comparison else node.pred.lam.source("k", "q")
        return f"rasp.Select({kids[0]}, {kids[1]}, {pred})"
    if op is Op.AGGREGATE:
        return f"rasp.categorical(rasp.Aggregate({kids[0]}, {kids[1]}))"
    if op is Op.MEAN:
        return f"rasp.numerical(rasp.Aggregate({kids[0]}, {kids[1]}, default=0))"
    if op is Op.WIDTH:
        return f"rasp.SelectorWidth({kids[0]})"
    raise ValueError(f"cannot render {op}")


def to_source(root: Node, header: str = "") -> str:
    """A complete candidate file: imports, one line per intermediate, ``program = ...``."""
    names = assign_names(root)
    lines = []
    if header:
        lines.append('"""' + header.replace('"""', "'''") + '"""')
        lines.append("")
    lines.append("from tracr.rasp import rasp")
    lines.append("")
    if root.op in BUILTIN:  # the identity rule: a Map keeps it a compilable program
        lines.append(f"program = rasp.Map(lambda x: x, {BUILTIN[root.op]}).named(\"program\")")
        return "\n".join(lines) + "\n"
    for node in root.walk():
        if node.op in BUILTIN:
            continue
        name = names[id(node)]
        lines.append(f"{name} = {expression(node, names)}.named({name!r})")
    return "\n".join(lines) + "\n"
