"""Functions inferred from the data: the Map / SequenceMap a target implies, made total.

When the target at a position is a function of one or two values the program already has
there, the function itself comes from the examples: first a library function that fits
every observed pair (it generalises, and reads like a rule), else the table of observed
pairs. tracr calls every Map on every value of its input's value set, so a table must be
total; an entry the examples leave undetermined is handled by one principled rule:

* a value that is **reachable** (a vocabulary token, or a value the expression takes on
  some row of the search's batch: induction rows and random inputs up to max_seq_len) but
  never observed with an output makes the table **undetermined**: it is refused, and the
  refusal says which entries are missing (:class:`Refusal`);
* a value the value set holds but no row ever produces (tracr's value sets are supersets:
  products of inputs, counts never reached) is filled with the most common output, and the
  candidate's summary says how many entries were filled that way.

A two-argument table is split by one argument when that generalises: the rows whose first
argument is the sentinel "nothing there" value of a window (see ``blocks.offset_read``) get
their own function of the other argument, the rest a library function of both
(``x + y where there is a next token, else 2 * x``); or every value of the smaller argument
gets its own library function of the other (``x + 1 if odd else x``). Only when neither
fits is the plain 2-D table used, under the same reachability rule.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from autoconn.inducers.search.dsl import Lam, lam1, lam2, paren

TABLE_TIER = 3  # a table costs two more than a plain function: equally cheap library programs rank first
MAX_TABLE = 64  # entries of a unary table (value set size) we are willing to write out
MAX_TABLE2 = 256  # entries of a two-argument table

# A window read past either end of the input yields this value (see blocks.offset_read).
SENTINEL = "none"


def sentinel_for(vocab: Iterable[Any]) -> str:
    """A string no token equals (the marker of "no position there")."""
    taken = {v for v in vocab if isinstance(v, str)}
    s = SENTINEL
    while s in taken:
        s += "_"
    return s


@dataclass
class Refusal:
    """Why a table was not made: which reachable entries the examples leave undetermined."""

    missing: list[Any]

    def __str__(self) -> str:
        shown = ", ".join(repr(m) for m in self.missing[:4]) + (" ..." if len(self.missing) > 4 else "")
        return f"table undetermined: no example shows the output for {shown}"


def _key(v: Any) -> tuple[str, Any]:
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", v)
    if isinstance(v, tuple):
        return ("t", tuple(_key(x) for x in v))
    return ("s", v)


def same(a: Any, b: Any) -> bool:
    """Equality that keeps True and 1 apart (the compiled check does)."""
    return _key(a) == _key(b)


def _most_common(values: Sequence[Any]) -> Any:
    counts = collections.Counter(_key(v) for v in values)
    best = counts.most_common(1)[0][0]
    return next(v for v in values if _key(v) == best)


def _literal(table: dict[Any, Any]) -> str:
    return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in table.items()) + "}"


def table_lam(table: dict[Any, Any], default: Any, slug: str = "table") -> Lam:
    """``{k: v, ...}.get(x, default)`` as a Lam (keys: values of one kind, so True/1 never collide)."""
    frozen = dict(table)
    text = _literal(frozen)
    return lam1(lambda x: frozen.get(x, default), lambda x: f"{text}.get({x}, {default!r})", slug, TABLE_TIER)


def table2_lam(table: dict[tuple[Any, Any], Any], default: Any) -> Lam:
    frozen = dict(table)
    text = _literal(frozen)
    return lam2(lambda x, y: frozen.get((x, y), default), lambda x, y: f"{text}.get(({x}, {y}), {default!r})",
                "table", TABLE_TIER)


IDENTITY = lam1(lambda x: x, lambda x: x, "same")


def _constant(value: Any) -> Lam:
    """x -> value, whatever x is."""
    return lam1(lambda x: value, lambda x: repr(value))
PAIR = lam2(lambda x, y: (x, y), lambda x, y: f"f({x}, {y})", "pair")  # only to name a refused table


@dataclass
class Inferred:
    lam: Lam
    filled: int = 0  # value-set entries no row produces, filled with the most common output
    table: bool = False  # a lookup table (not a library function)

    @property
    def note(self) -> str:
        parts = []
        if self.table:
            parts.append("table from the examples")
        if self.filled:
            parts.append(f"{self.filled} unreachable entr{'y' if self.filled == 1 else 'ies'} filled by default")
        return "; ".join(parts)


Fit = Callable[[list[Any], list[Any]], "Lam | None"]  # (sources, targets) -> a library function, or None


def infer_unary(domain: Sequence[Any], pairs: dict[Any, Any], reachable: Iterable[Any], fit: Fit,
                sentinel: Any = None) -> Inferred | Refusal:
    """A total function on ``domain`` agreeing with every observed (x -> y) pair.

    ``pairs`` maps observed inputs to outputs (already known to be a function); ``fit``
    finds a library function for given pairs. With a ``sentinel`` in the domain, it gets its
    own constant and the other values their own function."""
    if sentinel is not None and any(same(d, sentinel) for d in domain):
        rest_domain = [d for d in domain if not same(d, sentinel)]
        rest = {k: v for k, v in pairs.items() if not same(k, sentinel)}
        reach = [r for r in reachable if not same(r, sentinel)]
        if not rest:
            return Refusal([d for d in rest_domain if d in set(reach)][:8] or rest_domain[:1])
        inner = infer_unary(rest_domain, rest, reach, fit)
        if isinstance(inner, Refusal):
            return inner
        if sentinel in pairs:
            at = pairs[sentinel]
        else:
            if any(same(r, sentinel) for r in reachable):
                return Refusal([sentinel])
            at = _most_common(list(pairs.values()))
        call, text = inner.lam.call, inner.lam.text
        lam = lam1(lambda x: at if x == sentinel else call(x),
                   lambda x: f"{at!r} if {x} == {sentinel!r} else {paren(text(x))}", inner.lam.slug)
        return Inferred(lam, inner.filled, inner.table)
    src, dst = list(pairs), [pairs[k] for k in pairs]
    if all(same(s, t) for s, t in zip(src, dst)):
        return Inferred(IDENTITY)
    found = fit(src, dst)
    if found is not None:
        return Inferred(found)
    if len(domain) > MAX_TABLE:
        return Refusal([])
    observed = {_key(k) for k in pairs}
    reach_keys = {_key(r) for r in reachable}
    missing = [d for d in domain if _key(d) not in observed and _key(d) in reach_keys]
    if missing:
        return Refusal(missing)
    default = _most_common(dst)
    filled = sum(1 for d in domain if _key(d) not in observed)
    return Inferred(table_lam(pairs, default), filled, table=True)


def infer_binary(da: Sequence[Any], db: Sequence[Any], pairs: dict[tuple[Any, Any], Any],
                 reachable: Iterable[tuple[Any, Any]], fit: Fit, fit2: Callable[[list[tuple[Any, Any]], list[Any]], Lam | None],
                 sentinel: Any = None) -> Inferred | Refusal:
    """A total f(a, b) agreeing with every observed ((a, b) -> y) pair (see the module doc)."""
    reach = list(reachable)
    # 1. a library function of both arguments where neither is the sentinel, and a function
    #    of the other argument (or a constant) where one of them is.
    if sentinel is not None and any(same(v, sentinel) for v in list(da) + list(db)):
        got = _with_sentinel(da, db, pairs, reach, fit, fit2, sentinel)
        if got is not None:
            return got
    # 2. one library (or total) function of the other argument per value of the smaller one.
    for by_first in ((len(da) <= len(db)), not (len(da) <= len(db))):
        rows_dom, cols_dom = (da, db) if by_first else (db, da)
        if len(rows_dom) > 12:
            continue
        rows: dict[Any, dict[Any, Any]] = {}
        for (a, b), y in pairs.items():
            r, c = (a, b) if by_first else (b, a)
            rows.setdefault(r, {})[c] = y
        reach_rows: dict[Any, list[Any]] = {}
        for a, b in reach:
            r, c = (a, b) if by_first else (b, a)
            reach_rows.setdefault(r, []).append(c)
        fns: list[tuple[Any, Inferred]] = []
        ok = True
        for r in rows_dom:
            if r not in rows:
                if reach_rows.get(r):
                    ok = False
                    break
                continue
            row_fn = infer_unary(cols_dom, rows[r], reach_rows.get(r, []), fit, sentinel)
            if isinstance(row_fn, Refusal) or row_fn.table:
                ok = False
                break
            fns.append((r, row_fn))
        if ok and fns:
            return Inferred(_piecewise(fns, by_first), sum(f.filled for _, f in fns))
    # 3. the plain 2-D table.
    if len(da) * len(db) > MAX_TABLE2:
        return Refusal([])
    observed = {(_key(a), _key(b)) for a, b in pairs}
    missing = [p for p in dict.fromkeys(reach) if (_key(p[0]), _key(p[1])) not in observed]
    if missing:
        return Refusal(missing)
    default = _most_common(list(pairs.values()))
    filled = len(da) * len(db) - len(observed)
    return Inferred(table2_lam(pairs, default), filled, table=True)


def _with_sentinel(da: Sequence[Any], db: Sequence[Any], pairs: dict[tuple[Any, Any], Any],
                   reach: list[tuple[Any, Any]], fit: Fit, fit2: Callable[..., Lam | None],
                   sentinel: Any) -> Inferred | None:
    is_s = lambda v: same(v, sentinel)  # noqa: E731
    normal = {k: v for k, v in pairs.items() if not is_s(k[0]) and not is_s(k[1])}
    f2 = fit2(list(normal), list(normal.values())) if normal else None
    if f2 is None:
        return None
    default = _most_common(list(pairs.values()))
    sides: list[Lam] = []
    filled = 0
    for side in (0, 1):  # side 0: the first argument is the sentinel (a function of the second)
        other_dom = [v for v in (db if side == 0 else da) if not is_s(v)]
        seen = {k[1 - side]: v for k, v in pairs.items() if is_s(k[side]) and not is_s(k[1 - side])}
        reachable = [p[1 - side] for p in reach if is_s(p[side]) and not is_s(p[1 - side])]
        if not reachable:
            sides.append(_constant(default))
            filled += int(any(is_s(v) for v in (da if side == 0 else db)))  # a case the value sets hold
            continue
        if not seen:
            return None
        got = infer_unary(other_dom, seen, reachable, fit)
        if isinstance(got, Refusal):
            return None
        sides.append(got.lam)
        filled += got.filled
    both = pairs.get((sentinel, sentinel), default)
    c2, t2 = f2.call, f2.text
    (g0, h0), (g1, h1) = (sides[0].call, sides[0].text), (sides[1].call, sides[1].text)
    s_ = sentinel

    in_a = any(is_s(v) for v in da)
    in_b = any(is_s(v) for v in db)

    def call(x: Any, y: Any) -> Any:
        if is_s(x):
            return both if is_s(y) else g0(y)
        return g1(x) if is_s(y) else c2(x, y)

    def text(x: str, y: str) -> str:
        # Only the cases the value sets can hold are written out.
        normal = paren(t2(x, y))
        if in_b:
            normal = f"{paren(h1(x))} if {y} == {s_!r} else {normal}"
        if not in_a:
            return normal
        first = f"{both!r} if {y} == {s_!r} else {paren(h0(y))}" if in_b else h0(y)
        return f"({first}) if {x} == {s_!r} else ({normal})"

    return Inferred(lam2(call, text, f2.slug), filled)


def _piecewise(fns: list[tuple[Any, Inferred]], by_first: bool) -> Lam:
    """f(x, y) = g_r(other) for the row value r of one argument (the last case is the default)."""
    cases = [(r, f.lam) for r, f in fns]
    last = cases[-1][1]

    def call(x: Any, y: Any) -> Any:
        r, c = (x, y) if by_first else (y, x)
        for value, g in cases:
            if same(r, value):
                return g.call(c)
        return last.call(c)

    def text(x: str, y: str) -> str:
        r, c = (x, y) if by_first else (y, x)
        body = paren(last.text(c))
        for value, g in reversed(cases[:-1]):
            test = r if value is True else (f"not {r}" if value is False else f"{r} == {value!r}")
            body = f"{paren(g.text(c))} if {test} else {body}"
        return body

    return lam2(call, text, "cases")
