"""Lowering a found expression to the program tracr compiles, and counting its layers.

Every Map is an MLP sublayer, and an MLP just before an attention costs a whole layer. So
before emitting, Maps are folded where tracr allows it with the same meaning:

* a chain of Maps is one Map (rasp.Map does this itself);
* a Map feeding a Select becomes part of the predicate: ``Select(k, f(q), EQ)`` is
  ``Select(k, q, lambda k, q: k == f(q))``;
* Maps feeding or following a SequenceMap become part of its function;
* a Map feeding a categorical Aggregate moves after it (the selector picks exactly one
  position, so ``Aggregate(s, f(v)) == f(Aggregate(s, v))``), unless it is an int code
  read over several equal positions (``Lam.movable``);
* a SequenceMap of a SequenceMap and one of that one's inputs is one SequenceMap of the
  two inputs (``f(g(x, y), y)``): two stacked MLPs would cost a layer;
* a zero test of a SelectorWidth becomes a zero test of a numerical mean of a 1 over the
  same selector when that saves a layer (the mean is attention only; SelectorWidth needs
  an MLP after its attention).

``tracr_layers`` re-implements tracr's layer allocation (craft_graph_to_model) and the
assembler's packing, so the count equals the compiled model's ``num_layers``.
"""

from __future__ import annotations

import collections
from typing import Any

from autoconn.inducers.search.dsl import Lam, Node, Op, Pred, paren
from autoconn.inducers.search.primitives import BY_NAME


def then(outer: Lam, inner: Lam) -> Lam:
    """outer(inner(...)) for a unary outer and an inner of any arity."""
    oc, ot, ic, it = outer.call, outer.text, inner.call, inner.text
    return Lam(inner.arity, lambda *a: oc(ic(*a)), lambda *n: ot(paren(it(*n))), outer.slug or inner.slug,
               max(outer.tier, inner.tier))


class _Lowerer:
    def __init__(self) -> None:
        self.memo: dict[int, Node] = {}
        self.cons: dict[str, Node] = {}

    def node(self, op: Op, children: tuple[Node, ...], fn: Lam | None = None, pred: Pred | None = None) -> Node:
        made = Node(op, children, fn, pred)
        return self.cons.setdefault(made.key, made)

    def lower(self, node: Node) -> Node:
        found = self.memo.get(id(node))
        if found is None:
            found = self._lower(node)
            self.memo[id(node)] = found
        return found

    @staticmethod
    def _unwrap(node: Node) -> tuple[Node, Lam | None]:
        if node.op is Op.MAP:
            return node.children[0], node.fn
        return node, None

    def _lower(self, node: Node) -> Node:
        op = node.op
        if op in (Op.TOKENS, Op.INDICES):
            return self.node(op, ())
        kids = tuple(self.lower(c) for c in node.children)
        if op is Op.MAP:
            (x,) = kids
            if x.op in (Op.MAP, Op.SEQMAP):
                return self.node(x.op, x.children, then(node.function, x.function))
            return self.node(Op.MAP, (x,), node.function)
        if op is Op.NUMMAP:
            x, inner = self._unwrap(kids[0])
            return self.node(Op.NUMMAP, (x,), then(node.function, inner) if inner else node.function)
        if op is Op.SEQMAP:
            a, fa = self._unwrap(kids[0])
            b, fb = self._unwrap(kids[1])
            fn = node.function.after(fa, fb) if (fa or fb) else node.function
            if a is b:
                return self.node(Op.MAP, (a,), fn.diagonal())
            nested = _fold_nested(a, b, fn)
            if nested is not None:
                return self.node(Op.SEQMAP, nested[0], nested[1])
            return self.node(Op.SEQMAP, (a, b), fn)
        if op is Op.SELECT:
            k, fk = self._unwrap(kids[0])
            q, fq = self._unwrap(kids[1])
            pred = node.predicate
            if fk or fq:
                pred = Pred(pred.lam.after(fk, fq), None)
            return self.node(Op.SELECT, (k, q), pred=pred)
        if op is Op.AGGREGATE:
            sel, v = kids
            if v.op is Op.MAP and v.function.movable:
                moved = self.node(Op.AGGREGATE, (sel, v.children[0]))
                return self.node(Op.MAP, (moved,), v.function)
            return self.node(Op.AGGREGATE, (sel, v))
        if op in (Op.MEAN, Op.WIDTH, Op.LINEAR):
            return self.node(op, kids)
        raise ValueError(f"cannot lower {op}")


def _fold_nested(a: Node, b: Node, fn: Lam) -> tuple[tuple[Node, Node], Lam] | None:
    """f(g(x, y), y) (or f(x, g(x, y)), in any argument order) over the same two inputs is
    one SequenceMap of x and y: one MLP instead of two stacked ones (one layer fewer)."""
    call, text = fn.call, fn.text
    if a.op is Op.SEQMAP and b in a.children:
        g, (x, y) = a.function, a.children
        second = 0 if b is x else 1
        return (x, y), Lam(2, lambda u, v: call(g.call(u, v), (u, v)[second]),
                           lambda u, v: text(paren(g.text(u, v)), (u, v)[second]), fn.slug, fn.tier)
    if b.op is Op.SEQMAP and a in b.children:
        g, (x, y) = b.function, b.children
        first = 0 if a is x else 1
        return (x, y), Lam(2, lambda u, v: call((u, v)[first], g.call(u, v)),
                           lambda u, v: text((u, v)[first], paren(g.text(u, v))), fn.slug, fn.tier)
    return None


MEAN_PROBE = range(1, 65)  # widths a zero test is checked on (beyond any max_seq_len we compile)


def _zero_test(fn: Lam) -> tuple[Any, Any] | None:
    """(f(0), f(n > 0)) when a unary f only tells zero from non-zero, else None."""
    try:
        positive = {repr(fn.call(n)) for n in MEAN_PROBE}
        if len(positive) != 1:
            return None
        return fn.call(0), fn.call(1)
    except Exception:  # noqa: BLE001 - not a function of a count
        return None


def _zero_lam(at_zero: Any, otherwise: Any) -> Lam:
    """The same test on a mean of a numerical 1 (0 exactly when nothing is selected)."""
    bools = isinstance(at_zero, bool) and isinstance(otherwise, bool)  # (1, 0) == (True, False) in Python
    if bools and (at_zero, otherwise) == (True, False):
        return Lam(1, lambda m: m == 0, lambda m: f"{m} == 0", "none")
    if bools and (at_zero, otherwise) == (False, True):
        return Lam(1, lambda m: m != 0, lambda m: f"{m} != 0", "some")
    return Lam(1, lambda m: at_zero if m == 0 else otherwise, lambda m: f"{at_zero!r} if {m} == 0 else {otherwise!r}",
               "zero_test")


ONE_IF_ANY = Lam(1, lambda n: 1 if n > 0 else 0, lambda n: f"1 if {n} > 0 else 0", "one")


class _Meanifier(_Lowerer):
    """Rewrites ``f(SelectorWidth(s))`` with f a zero test as ``f'(mean(s, 1))``: the
    numerical mean is attention only, SelectorWidth needs an MLP after its attention, so the
    test fits in the attention's own layer. The numerical 1 is ``1 if length > 0 else 0``
    (value set {0, 1}: a mean of a constant 1 could never be inferred to be 0)."""

    def __init__(self) -> None:
        super().__init__()
        self._one: Node | None = None

    def one(self) -> Node:
        if self._one is None:
            tokens = self.node(Op.TOKENS, ())
            length = self.node(Op.WIDTH, (self.node(Op.SELECT, (tokens, tokens), pred=BY_NAME["TRUE"]),))
            self._one = self.node(Op.NUMMAP, (length,), ONE_IF_ANY)
        return self._one

    def _lower(self, node: Node) -> Node:
        if node.op is Op.MAP and node.children[0].op is Op.WIDTH:
            test = _zero_test(node.function)
            if test is not None:
                sel = self.lower(node.children[0].children[0])
                mean = self.node(Op.MEAN, (sel, self.one()))
                return self.node(Op.MAP, (mean,), _zero_lam(*test))
        if node.op in (Op.TOKENS, Op.INDICES):
            return self.node(node.op, ())
        kids = tuple(self.lower(c) for c in node.children)
        return self.node(node.op, kids, node.fn, node.pred)


def lower(root: Node) -> Node:
    """The foldable Maps folded, shared subexpressions kept shared, zero tests of counts
    made numerical means when that saves a layer, and rasp.tokens in the graph (tracr
    refuses a program without it)."""
    program = _lower_plain(root)
    if any(n.op is Op.MAP and n.children[0].op is Op.WIDTH for n in program.walk()):
        meanifier = _Meanifier()
        meaned = _add_tokens(meanifier, meanifier.lower(program))
        if tracr_layers(meaned) < tracr_layers(program):
            return meaned
    return program


def _lower_plain(root: Node) -> Node:
    lowerer = _Lowerer()
    return _add_tokens(lowerer, lowerer.lower(root))


def _add_tokens(lowerer: _Lowerer, program: Node) -> Node:
    if any(n.op is Op.TOKENS for n in program.walk()):
        return program
    tokens = lowerer.node(Op.TOKENS, ())
    if program.op is Op.MAP:  # the same MLP, with tokens as an ignored second input
        return lowerer.node(Op.SEQMAP, (program.children[0], tokens), _ignore_second(program.function))
    if program.numerical:
        raise ValueError("a numerical program that never reads the tokens cannot be compiled")
    return lowerer.node(Op.SEQMAP, (program, tokens), _ignore_second(None))


def _ignore_second(fn: Lam | None) -> Lam:
    if fn is None:
        return Lam(2, lambda x, t: x, lambda x, t: x, "")
    call, text = fn.call, fn.text
    return Lam(2, lambda x, t: call(x), lambda x, t: text(x), fn.slug)


def _block(node: Node) -> str:
    if node.op in (Op.MAP, Op.SEQMAP, Op.NUMMAP, Op.LINEAR):
        return "mlp"
    if node.op in (Op.AGGREGATE, Op.MEAN):
        return "attn"
    if node.op is Op.WIDTH:
        return "both"
    return "none"  # tokens, indices, selects


def tracr_layers(root: Node) -> int:
    """The number of layers tracr's compiler gives a lowered program."""
    order = root.walk()
    depth: dict[int, int] = {}
    for n in order:
        if n.op in (Op.TOKENS, Op.INDICES):
            depth[id(n)] = 0
            continue
        step = 0 if n.op is Op.SELECT else 1
        depth[id(n)] = max(depth[id(c)] for c in n.children) + step
    comps = [n for n in order if _block(n) != "none"]
    if not comps:
        return 0
    by_depth: dict[int, list[Node]] = collections.defaultdict(list)
    node_depth: dict[int, int] = {}
    for n in comps:
        node_depth[id(n)] = depth[id(n)]
        by_depth[depth[id(n)]].append(n)
    lo, hi = min(by_depth), max(by_depth)
    d = lo
    while d < hi:
        if all(_block(n) == "attn" for n in by_depth[d]) and all(_block(n) == "mlp" for n in by_depth[d + 1]):
            for ud in range(d + 1, hi + 1):
                for n in by_depth[ud]:
                    node_depth[id(n)] = ud - 1
                by_depth[ud - 1].extend(by_depth[ud])
                by_depth[ud] = []
            hi -= 1
        d += 1
    used: set[int] = set()
    layer, current = 0, 1
    for n in sorted(comps, key=lambda n: node_depth[id(n)]):
        nd = node_depth[id(n)]
        while nd > current:
            current += 1
            layer += 2
        if nd == current:
            if _block(n) == "both":
                used |= {layer, layer + 1}
            else:
                used.add(layer + (1 if _block(n) == "mlp" else 0))
    # The assembler packs the non-empty sublayers into attn/mlp slots, in order.
    slot = -1
    for sub in sorted(used):
        want = sub % 2
        slot += 1
        while slot % 2 != want:
            slot += 1
    return slot // 2 + 1


def describe(node: Node) -> str:
    """A one-line infix rendering of a (lowered) expression, for summaries."""
    op = node.op
    if op is Op.TOKENS:
        return "tokens"
    if op is Op.INDICES:
        return "indices"
    if node.window:  # blocks.offset_read: "ahead_2(tokens)" rather than its three operations
        return f"{node.function.slug}({describe(node.children[0].children[1])})"
    parts = [describe(c) for c in node.children]
    if op in (Op.MAP, Op.NUMMAP):
        return node.function.text(paren(parts[0]))
    if op is Op.SEQMAP:
        return node.function.text(paren(parts[0]), paren(parts[1]))
    if op is Op.SELECT:
        how = node.predicate.comparison or f"k,q: {node.predicate.lam.text('k', 'q')}"
        return f"select({parts[0]}, {parts[1]}, {how})"
    if op is Op.AGGREGATE:
        return f"aggregate({parts[0]}, {parts[1]})"
    if op is Op.MEAN:
        return f"mean({parts[0]}, {parts[1]})"
    if op is Op.LINEAR:
        return f"{paren(parts[0])} - {paren(parts[1])}"
    if op is Op.WIDTH:
        return "length" if is_length(node) else f"width({parts[0]})"
    return op.value


def is_length(node: Node) -> bool:
    return (node.op is Op.WIDTH and node.children[0].op is Op.SELECT
            and node.children[0].predicate.comparison == "TRUE")
