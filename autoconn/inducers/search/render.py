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
_RANK = {"LT": "smaller", "GT": "greater", "LEQ": "not_greater", "GEQ": "not_smaller", "NEQ": "different"}
_WORDS = [("==", " eq "), ("!=", " ne "), ("<=", " le "), (">=", " ge "), ("<", " lt "), (">", " gt "),
          ("%", " mod "), ("//", " div "), ("+", " plus "), ("-", " minus "), ("*", " times ")]


def _clean(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()
    text = re.sub(r"_+", "_", text)
    if not text or text[0].isdigit():
        text = "v_" + text
    return text


def _words(expression: str) -> str:
    """An expression's text as identifier words: "k == 'b'" -> "k_eq_b"."""
    for symbol, word in _WORDS:
        expression = expression.replace(symbol, word)
    return _clean(expression)


def assign_names(root: Node, root_name: str = "program") -> dict[int, str]:
    """A unique, descriptive Python identifier (and rasp name) for every non-input node."""
    names: dict[int, str] = {}
    taken: set[str] = {"rasp", "lib", "program", "tokens", "indices"}

    def short(node: Node) -> str:
        if node.op in BUILTIN:
            return _SHORT[node.op.value]
        return names[id(node)]

    def selection(sel: Node) -> str:
        """What a selector picks, in words: "idx_eq_opp", "k_eq_b" (a key-only test)."""
        k, q = (short(c) for c in sel.children)
        if sel.predicate.comparison:
            return f"{k}_{sel.predicate.comparison.lower()}_{q}"
        return _words(sel.predicate.lam.text("k", "q"))

    def base(node: Node) -> str:
        op, kids = node.op, node.children
        if is_length(node):
            return "length"
        if op in (Op.MAP, Op.NUMMAP):
            return f"{short(kids[0])}_{node.function.slug}" if node.function.slug else f"f_{short(kids[0])}"
        if op is Op.SEQMAP:
            return f"{short(kids[0])}_{node.function.slug or 'with'}_{short(kids[1])}"
        if op is Op.SELECT:
            return f"select_{selection(node)}"
        if op is Op.AGGREGATE:
            sel = kids[0]
            if sel.children[0].op is Op.INDICES and sel.predicate.comparison == "EQ":
                return f"{short(kids[1])}_at_{short(sel.children[1])}"
            return f"{short(kids[1])}_where_{selection(sel)}"
        if op is Op.MEAN:
            return f"frac_{short(kids[1])}"
        if op is Op.LINEAR:
            return "signed"
        if op is Op.WIDTH:
            sel = kids[0]
            same, how = sel.children[0] is sel.children[1], sel.predicate.comparison
            if same and how == "EQ":
                return "hist" if sel.children[0].op is Op.TOKENS else f"hist_{short(sel.children[0])}"
            if same and sel.children[0].op is Op.INDICES and how in ("LT", "GT"):
                return "n_before" if how == "LT" else "n_after"
            if same and how in _RANK:
                return f"n_{_RANK[how]}" if sel.children[0].op is Op.TOKENS else f"n_{_RANK[how]}_{short(sel.children[0])}"
            return f"count_{selection(sel)}"
        return op.value

    generic = {Op.MAP: "mapped", Op.SEQMAP: "combined", Op.SELECT: "select", Op.AGGREGATE: "moved",
               Op.WIDTH: "count", Op.MEAN: "frac", Op.NUMMAP: "indicator",
               Op.LINEAR: "signed"}
    for node in root.walk():
        if node.op in BUILTIN:
            continue
        if node is root:
            names[id(node)] = root_name
            continue
        name = _clean(base(node))
        if len(name) > MAX_NAME:
            name = name[:MAX_NAME].rstrip("_") if node.op is not Op.SELECT else generic[node.op]
            name = name if len(name) >= 4 else generic.get(node.op, "value")
        unique, suffix = name, 2
        while unique in taken:
            unique, suffix = f"{name}_{suffix}", suffix + 1
        taken.add(unique)
        names[id(node)] = unique
    return names


def _ref(node: Node, names: dict[int, str]) -> str:
    return BUILTIN.get(node.op) or names[id(node)]


def expression(node: Node, names: dict[int, str]) -> str:
    """The right-hand side that defines one node, referring to its children by name."""
    op, kids = node.op, [_ref(c, names) for c in node.children]
    if op is Op.MAP:
        return f"rasp.Map({node.function.source('x')}, {kids[0]})"
    if op is Op.NUMMAP:
        return f"rasp.numerical(rasp.Map({node.function.source('x')}, {kids[0]}))"
    if op is Op.SEQMAP:
        return f"rasp.SequenceMap({node.function.source('x', 'y')}, {kids[0]}, {kids[1]})"
    if op is Op.SELECT:
        predicate = node.predicate
        pred = f"rasp.Comparison.{predicate.comparison}" if predicate.comparison else predicate.lam.source("k", "q")
        return f"rasp.Select({kids[0]}, {kids[1]}, {pred})"
    if op is Op.AGGREGATE:
        return f"rasp.categorical(rasp.Aggregate({kids[0]}, {kids[1]}))"
    if op is Op.MEAN:
        return f"rasp.numerical(rasp.Aggregate({kids[0]}, {kids[1]}, default=0))"
    if op is Op.WIDTH:
        return f"rasp.SelectorWidth({kids[0]})"
    if op is Op.LINEAR:
        return f"rasp.numerical(rasp.LinearSequenceMap({kids[0]}, {kids[1]}, 1, -1))"
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
