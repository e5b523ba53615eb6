"""The search's expression language: a typed subset of RASP that tracr compiles.

Nodes form a DAG (the search shares subexpressions such as ``length``). Every function
carries both a Python callable (to evaluate and to build the rasp object) and a text
renderer (to emit readable source), so the two can never drift apart: both come from the
same :class:`Lam`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_ATOM = re.compile(r"^[A-Za-z_][A-Za-z_0-9.]*$|^-?\d+(\.\d+)?$|^'[^']*'$|^\"[^\"]*\"$")


def _is_call(text: str) -> bool:
    """``name(...)`` whose opening parenthesis closes at the very end (e.g. ``min(x, 3)``)."""
    head = re.match(r"^[A-Za-z_][A-Za-z_0-9.]*\(", text)
    if not head or not text.endswith(")"):
        return False
    depth = 0
    for i, ch in enumerate(text[head.end() - 1:], start=head.end() - 1):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return i == len(text) - 1
    return False


def paren(text: str) -> str:
    """Wraps a sub-expression in parentheses unless it is a name, a literal or a call."""
    return text if _ATOM.match(text) or _is_call(text) else f"({text})"


@dataclass(frozen=True, eq=False)
class Lam:
    """A total function of one or two values, as a callable and as Python source text.

    ``text`` renders the body given the argument texts (already parenthesised where
    needed); ``key`` (the body over ``x``/``y``) identifies the function, so two Lams with
    the same key are the same function.
    """

    arity: int
    call: Callable[..., Any]
    text: Callable[..., str]
    slug: str = ""  # a short identifier-ish description for variable names, e.g. "plus_1"
    tier: int = 1  # 1 for the plainest functions; each tier above costs one more in the search
    movable: bool = True  # False: keep this Map before an Aggregate (an int code read over several positions)
    note: str = ""  # said in the candidate's summary (e.g. "table from the examples")

    @property
    def key(self) -> str:
        return self.text(*("x", "y")[: self.arity])

    def source(self, *params: str) -> str:
        """``lambda x: body`` (or ``lambda k, q: body`` with params given)."""
        names = params or ("x", "y")[: self.arity]
        return f"lambda {', '.join(names)}: {self.text(*names)}"

    def after(self, *inner: Lam | None) -> Lam:
        """This function applied to the results of per-argument unary functions (None = identity)."""
        fs = [g.call if g is not None else None for g in inner]
        ts = [g.text if g is not None else None for g in inner]
        outer_call, outer_text = self.call, self.text

        def call(*args: Any) -> Any:
            return outer_call(*(f(a) if f is not None else a for f, a in zip(fs, args)))

        def text(*names: str) -> str:
            return outer_text(*(paren(t(n)) if t is not None else n for t, n in zip(ts, names)))

        return Lam(self.arity, call, text, self.slug, self.tier)

    def diagonal(self) -> Lam:
        """f(x, x) as a unary function (a SequenceMap whose two inputs became the same SOp)."""
        assert self.arity == 2
        outer_call, outer_text = self.call, self.text
        return Lam(1, lambda x: outer_call(x, x), lambda n: outer_text(n, n), self.slug, self.tier)


def lam1(call: Callable[[Any], Any], text: Callable[[str], str], slug: str = "", tier: int = 1,
         movable: bool = True) -> Lam:
    return Lam(1, call, text, slug, tier, movable)


def lam2(call: Callable[[Any, Any], Any], text: Callable[[str, str], str], slug: str = "", tier: int = 1) -> Lam:
    return Lam(2, call, text, slug, tier)


@dataclass(frozen=True, eq=False)
class Pred:
    """A Select predicate ``(key, query) -> bool``; ``comparison`` names the rasp.Comparison
    it equals (rendered as ``rasp.Comparison.EQ``), or None for a custom lambda."""

    lam: Lam
    comparison: str | None = None

    @property
    def key(self) -> str:
        return self.comparison or self.lam.text("k", "q")


class Op(enum.Enum):
    TOKENS = "tokens"
    INDICES = "indices"
    MAP = "map"  # categorical -> categorical
    SEQMAP = "seqmap"  # categorical x categorical -> categorical
    NUMMAP = "nummap"  # categorical -> numerical 0/1 indicator
    SELECT = "select"
    AGGREGATE = "aggregate"  # categorical, exactly one position selected
    MEAN = "mean"  # numerical aggregate of a 0/1 indicator
    WIDTH = "width"  # SelectorWidth
    LINEAR = "linear"  # numerical x - y (LinearSequenceMap(x, y, 1, -1)): signed numerical outputs


# Cost of one operation: attention (a layer's attention sublayer) costs more than an MLP.
OP_COST = {
    Op.TOKENS: 0,
    Op.INDICES: 0,
    Op.MAP: 1,
    Op.NUMMAP: 1,
    Op.SEQMAP: 2,
    Op.SELECT: 0,
    Op.AGGREGATE: 3,
    Op.MEAN: 3,
    Op.WIDTH: 3,
    Op.LINEAR: 2,
}


@dataclass(eq=False)
class Node:
    """One expression: an operation, its function or predicate, and its children.

    Nodes are compared by identity; ``key`` is a structural identity for hash-consing."""

    op: Op
    children: tuple[Node, ...] = ()
    fn: Lam | None = None
    pred: Pred | None = None
    cost: int = 0
    idiom: bool = False  # a blocks.py idiom added at a discounted cost (not a plain enumeration result)
    window: bool = False  # a value read at an offset (blocks.offset_read), or the sentinel past the ends
    _key: str = field(default="", repr=False)

    @property
    def key(self) -> str:
        """Structural identity (computed on first use: the search itself never needs it)."""
        if not self._key:
            what = self.fn.key if self.fn is not None else (self.pred.key if self.pred is not None else "")
            self._key = f"{self.op.value}[{what}]({','.join(c.key for c in self.children)})"
        return self._key

    @property
    def function(self) -> Lam:
        """The Lam of a Map, NumMap or SequenceMap: the op guarantees one, so a missing one is a bug."""
        if self.fn is None:
            raise ValueError(f"a {self.op.value} node carries no function")
        return self.fn

    @property
    def predicate(self) -> Pred:
        """The predicate of a Select: the op guarantees one, so a missing one is a bug."""
        if self.pred is None:
            raise ValueError(f"a {self.op.value} node carries no predicate")
        return self.pred

    @property
    def numerical(self) -> bool:
        return self.op in (Op.NUMMAP, Op.MEAN, Op.LINEAR)

    def walk(self) -> list[Node]:
        """All distinct nodes below and including this one, children before parents."""
        seen: set[int] = set()
        order: list[Node] = []

        def visit(node: Node) -> None:
            if id(node) in seen:
                return
            seen.add(id(node))
            for child in node.children:
                visit(child)
            order.append(node)

        visit(self)
        return order

    @property
    def dag_cost(self) -> int:
        """Cost counting each shared subexpression once (what the compiled model pays)."""
        return sum(OP_COST[n.op] for n in self.walk())

    def __repr__(self) -> str:  # short, for debugging
        return f"Node({self.key})"


TOKENS = Node(Op.TOKENS)
INDICES = Node(Op.INDICES)


def make(op: Op, children: tuple[Node, ...], fn: Lam | None = None, pred: Pred | None = None) -> Node:
    """A node whose cost is its own operation (plus its function's tier) plus its children's."""
    own = OP_COST[op] + (fn.tier - 1 if fn is not None else 0)
    if len(children) == 2 and children[0] is children[1]:  # Select(x, x) pays for x once
        return Node(op, children, fn, pred, own + children[0].cost)
    return Node(op, children, fn, pred, own + sum(c.cost for c in children))
