"""Bottom-up enumeration, cheapest first, with observational-equivalence pruning.

Level ``c`` holds every distinct expression of cost ``c`` (cost = sum of operation costs,
attention dearer than MLP, plainer functions cheaper). Two expressions are one when they
have the same values on every row of the batch (induction rows and synthetic rows up to
max_seq_len), so the bank holds behaviours, not syntax. Selectors are enumerated too but
only their summaries are kept: the width at every position (for SelectorWidth) and, when
they pick exactly one position at every induction position, which one (for a categorical
Aggregate). Every new expression is also offered to the goal-directed shortcuts
(``goals``), which often complete a program several levels early. Token tests also seed
running sums over them (``blocks.prefix_count`` and the signed balances) at a discounted
cost: idioms 3-4 operations deep that plain enumeration would reach only seconds later.
Window reads (the token at i - c, i + c, c or length - 1 - c, or a "none" sentinel where
there is no such position: ``blocks.offset_read``) join the bank the same way, and so do
the running counts of attention-derived marks ("no equal token before i"): partial results
fed back, so three-step rules ("distinct tokens so far") compose from general pieces.

Numerical targets are matched as categorical values as well (a table of the numbers the
examples show), then cast by ``blocks.numerical_output``; the run records why it stopped
(``SearchResult.stop_reason``: found / budget / exhausted) and which tables it refused.

Grammar restrictions keep the bank to plausible rules: a Map chain is at most two deep; a
SequenceMap of two elementwise expressions must join a function of the tokens with one of
the indices (anything else is a table of one input); a Select between two derived
expressions of the same input is skipped; an Aggregate moves only non-Map values (a Map
after the Aggregate is the same program).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoconn.conn.compare import NUMERIC_TOLERANCE
from autoconn.inducers.search import blocks as B
from autoconn.inducers.search import primitives as P
from autoconn.inducers.search import tables as T
from autoconn.inducers.search.dsl import INDICES, OP_COST, TOKENS, Lam, Node, Op, Pred, make
from autoconn.inducers.search.evaluate import CODE, MISSING, Batch, Entry, Evaluator, NumSem, SelSem, Sem
from autoconn.inducers.search.goals import Goals

CHECK_EVERY = 64


class _Stop(Exception):
    """The time budget ran out (or enough was found)."""


@dataclass
class SearchConfig:
    max_cost: int = 16
    synthetic_rows: int = 24
    patience: float = 3.0  # unconfirmed first match: search on until this many times its time...
    grace_seconds: float = 1.0  # ...plus this (a cheaper program may be a level or two away)
    patience_short_of_want: float = 4.0  # fewer matches than wanted: this many times...
    grace_short_of_want: float = 2.0  # ...plus this
    max_map_chain: int = 2  # Map(Map(x)) at most: longer chains are mostly arithmetic noise
    max_elementwise_ops: int = 3  # Maps/SequenceMaps in one function of tokens and indices
    max_level_size: int = 30000  # categorical expressions kept per cost level (memory: ~6 KB each)
    max_bank_size: int = 100000  # and in all; beyond, new ones are still checked but not kept
    max_selectors_per_level: int = 60000
    goals: bool = True
    idioms: bool = True  # running sums of token tests (blocks.prefix_count ...) join the bank early
    max_idiom_seeds: int = 8  # token tests they are built from
    max_derived_seed_cost: int = 7  # attention-derived marks whose running count joins the bank
    max_derived_seeds: int = 1000
    windows: bool = True  # tokens at offsets (i +- c, c, length - 1 - c) join the bank early (blocks.offset_read)
    tables: bool = True  # goals may fill a Map / SequenceMap with the table the examples imply (tables.py)
    seed: int = 0


@dataclass
class SelEntry:
    """A selector's summary; the matrix itself is recomputed on demand."""

    node: Node
    k: Entry
    q: Entry
    pred: Pred
    pick: np.ndarray | None  # [R, L] the one selected key position (exactly-one selectors)
    pick_bad: np.ndarray | None  # [R] rows where it does not pick exactly one
    bad: np.ndarray | None


@dataclass
class Match:
    node: Node
    cost: int
    seconds: float
    enumerated: int
    synthetic_bad: int  # synthetic rows where some categorical Aggregate does not pick exactly one
    signature: int
    fresh: bool = True  # not excluded by the caller (e.g. already tried)


@dataclass
class SearchResult:
    matches: list[Match]
    enumerated: int
    seconds: float
    level: int
    timed_out: bool
    first_match_seconds: float | None = None
    stats: dict[str, int] = field(default_factory=dict)
    stop_reason: str = ""  # "found", "budget", "exhausted" (every level up to max_cost), or "error: ..."
    refusals: list[str] = field(default_factory=list)  # tables refused as undetermined (first few)


def _support(node: Node, kids: Sequence[Entry | None] = ()) -> frozenset[str] | None:
    if node.op in (Op.TOKENS, Op.INDICES):
        return frozenset({node.op.value})
    if node.op in (Op.MAP, Op.SEQMAP) and kids:
        supports = [k.support for k in kids if k is not None and k.support is not None]
        if len(supports) == len(kids):
            return frozenset().union(*supports)
    return None


def _chain(node: Node) -> int:
    """How many Maps are stacked at the top of this expression."""
    depth = 0
    while node.op is Op.MAP:
        depth += 1
        node = node.children[0]
    return depth


class Search:
    """One search over one task's examples; call :meth:`run` once."""

    def __init__(self, inputs: Sequence[Sequence[Any]], outputs: Sequence[Sequence[Any]], *,
                 vocab: Sequence[Any], max_seq_len: int, numerical: bool,
                 output_vocab: Sequence[Any] = (), config: SearchConfig | None = None) -> None:
        self.cfg = config or SearchConfig()
        self.numerical = numerical
        self.batch = Batch.build(inputs, vocab, max_seq_len, self.cfg.synthetic_rows, self.cfg.seed)
        self.ev = Evaluator(self.batch, vocab, max_seq_len)
        self.n = self.batch.n_induction
        self.mask = self.batch.mask
        self.imask = self.mask[: self.n]
        width = self.batch.width
        self.ones = np.ones(width, dtype=np.uint8)
        outs = list(output_vocab) or sorted({v for row in outputs for v in row}, key=repr)
        self.pools = P.Pools.from_task(tuple(vocab), () if numerical else tuple(outs), max_seq_len)
        self.goals: Goals | None = None
        self.int_tokens = self.ev.int_valued(self.ev.tokens.vset)
        self.ordered_tokens = P.value_kind(self.ev.values(self.ev.tokens.vset)) in ("int", "str")
        self.sentinel = T.sentinel_for(vocab)
        if numerical:
            self.target_num = np.zeros((self.n, width))
            for r, row in enumerate(outputs):
                self.target_num[r, : len(row)] = [float(v) for v in row]
        # Numerical targets are matched as categorical values too (a table of the numbers),
        # then cast to a numerical SOp (blocks.numerical_output).
        target = np.full((self.n, width), MISSING, dtype=CODE)
        for r, row in enumerate(outputs):
            target[r, : len(row)] = [self.ev.u.code(float(v) if numerical else v) for v in row]
        self.target_bytes = target.tobytes()
        if self.cfg.goals:
            self.goals = Goals(self.ev, target, self.pools, self._propose, tables=self.cfg.tables,
                               sentinel=self.sentinel)
        self.levels: dict[int, list[Entry]] = {}
        self.sel_levels: dict[int, list[SelEntry]] = {}
        self.width_stash: dict[int, list[tuple[Node, Sem]]] = {}
        self.idiom_stash: dict[int, list[Node]] = {}
        self.idiom_seeds = 0
        self.derived_seeds = 0
        self.seeded: list[Node] = []
        self.seen: set[int] = set()
        self.seen_sel: set[int] = set()
        self.seen_num: set[int] = set()
        self.matches: list[Match] = []
        self.match_sigs: dict[int, int] = {}  # behaviour -> index in matches
        self.count = 0
        self.banked = 0
        self.level = 0
        self.timings: dict[str, float] = {}
        self.stats: dict[str, int] = {"maps": 0, "seqmaps": 0, "selects": 0, "widths": 0, "aggregates": 0, "means": 0}
        self._unary: dict[tuple[frozenset[int], bool], list[Lam]] = {}
        self._binary: dict[tuple[str, str], list[P.Binary]] = {}
        self._kinds: dict[frozenset[int], str] = {}

    # ---- bookkeeping --------------------------------------------------------------------

    def _tick(self) -> None:
        self.count += 1
        if self.count % CHECK_EVERY == 0:
            now = time.perf_counter()
            if now > self.deadline or self._enough(None, now):
                raise _Stop

    def _enough(self, finished_level: int | None, now: float | None = None) -> bool:
        """Stop when ``want`` new matches are confirmed (none cheaper can follow: their cost
        is at most the last finished level); or, with ``want`` unconfirmed ones, after
        ``patience`` times the time of the first plus a grace period (goal shortcuts find
        costly programs early; a cheaper one may be a level or two away); or, with fewer,
        after ``patience_short_of_want`` times (plus a longer grace)."""
        fresh = [m for m in self.matches if m.fresh]
        if not fresh:
            return False
        done = finished_level if finished_level is not None else self.level - 1
        if sum(1 for m in fresh if m.cost <= done) >= self.want:
            return True
        elapsed = (time.perf_counter() if now is None else now) - self.start
        first = fresh[0].seconds
        if len(fresh) >= self.want:
            return elapsed > self.cfg.patience * first + self.cfg.grace_seconds
        return elapsed > self.cfg.patience_short_of_want * first + self.cfg.grace_short_of_want

    def _record_categorical(self, node: Node, sem: Sem, sig: int) -> None:
        """A categorical expression equal to the target: the match itself, or for a
        numerical task the same values cast to a numerical SOp."""
        if self.numerical:
            values = self.ev.values(sem.vset)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                return
            node = B.numerical_output(node, values)
        self._record(node, sig, sem.bad)

    def _record(self, node: Node, sig: int, bad: np.ndarray | None) -> None:
        """A match; one per behaviour (over all rows), the cheapest one found."""
        known = self.match_sigs.get(sig)
        if known is not None:
            old = self.matches[known]
            if node.cost < old.cost:
                self.matches[known] = Match(node, node.cost, old.seconds, old.enumerated, old.synthetic_bad, sig,
                                            self.accept(node))
            return
        self.match_sigs[sig] = len(self.matches)
        nbad = int(bad[self.n:].sum()) if bad is not None else 0
        self.matches.append(Match(node, node.cost, time.perf_counter() - self.start, self.count, nbad, sig,
                                  self.accept(node)))

    def _propose(self, node: Node, sem: Sem) -> None:
        """A goal's proposal: recorded if it really equals the target on the induction rows."""
        sig, arr = sem.signature(self.mask)
        if arr[: self.n].tobytes() == self.target_bytes:
            self._record_categorical(node, sem, sig)

    def _add(self, node: Node, sem: Sem, kids: Sequence[Entry | None] = ()) -> Entry | None:
        """Adds a categorical expression unless an equivalent one is known; checks goals."""
        self._tick()
        sig, arr = sem.signature(self.mask)
        if sig in self.seen:
            return None
        self.seen.add(sig)
        kind = self._kinds.get(sem.vset)
        if kind is None:
            kind = self._kinds[sem.vset] = P.value_kind(self.ev.u.values[c] for c in sem.vset)
        support = _support(node, kids)
        ops = 1 + sum(k.ops for k in kids if k is not None) if support is not None and kids else 0
        entry = Entry(node, sem, kind, support, ops)
        if arr[: self.n].tobytes() == self.target_bytes:
            self._record_categorical(node, sem, sig)
        elif self.goals is not None:
            self.goals.observe(entry)
            self.goals.check(entry, arr)
        if self.cfg.idioms and kind == "bool" and node.op is Op.MAP and node.children[0] is TOKENS:
            self._stash_idioms(node)
        elif (self.cfg.idioms and kind == "bool" and node.op is Op.MAP and node.children[0].op is Op.WIDTH
              and node.function.key == "x == 0" and not node.children[0].idiom
              and any(n is TOKENS for n in node.walk())
              and node.cost <= self.cfg.max_derived_seed_cost and self.derived_seeds < self.cfg.max_derived_seeds
              and bool(((sem.codes[: self.n] != sem.codes[: self.n, :1]) & self.imask).any())):
            # A mark computed by attention (first occurrence, a record, a balance test...)
            # feeds the running count back into the bank: "how many so far" of anything.
            self.derived_seeds += 1
            self.seeded.append(node)
            count = B.prefix_count(node, self.batch.width)
            self.idiom_stash.setdefault(min(count.cost, self.level + 1), []).append(count)
        level = self.levels.setdefault(node.cost, [])
        if len(level) < self.cfg.max_level_size and self.banked < self.cfg.max_bank_size:
            level.append(entry)
            self.banked += 1
        return entry

    # ---- the run ------------------------------------------------------------------------

    def run(self, budget_seconds: float, want: int = 3, accept: Callable[[Node], bool] | None = None) -> SearchResult:
        """Searches until ``want`` matches that ``accept`` (default: all) are settled, or the
        budget is spent. Excluded matches still prune: they are known behaviours."""
        self.start = time.perf_counter()
        self.deadline = self.start + budget_seconds
        self.want = want
        self.accept = accept or (lambda node: True)
        try:
            self._add(TOKENS, self.ev.tokens)
            self._add(INDICES, self.ev.indices)
            if self.cfg.idioms and self.ordered_tokens:
                for node in B.dominance_counts():
                    self.idiom_stash.setdefault(node.cost, []).append(node)
            if self.cfg.idioms and self.int_tokens:
                for node in (B.extreme(True), B.extreme(False)):
                    self.idiom_stash.setdefault(node.cost, []).append(node)
            if self.cfg.windows:
                for node in B.windows(TOKENS, self.batch.width, self.sentinel):
                    self.idiom_stash.setdefault(node.cost, []).append(node)
            attention = OP_COST[Op.WIDTH]
            for c in range(1, self.cfg.max_cost + 1):
                self.level = c
                # Selectors of cost c - 3 are first needed now (attention costs 3): making them
                # only now keeps the cheap stages of every level ahead of the costly ones.
                stages = [(self._selects, c - attention), (self._idioms, c), (self._widths, c), (self._aggregates, c),
                          (self._means, c), (self._maps, c), (self._seqmaps, c)]
                for stage, arg in stages:
                    if arg < 0:
                        continue
                    began = time.perf_counter()
                    stage(arg)
                    self.timings[f"{c}:{stage.__name__[1:]}"] = round(time.perf_counter() - began, 3)
                if self._enough(c):
                    stop = "found"
                    break
            else:
                stop = "exhausted"
        except _Stop:
            stop = "budget" if time.perf_counter() >= self.deadline and not self._enough(None) else "found"
        timed_out = not self.matches and time.perf_counter() >= self.deadline
        first = min((m.seconds for m in self.matches), default=None)
        refusals = list(self.goals.refusals) if self.goals is not None else []
        return SearchResult(self.matches, self.count, time.perf_counter() - self.start, self.level,
                            timed_out, first, dict(self.stats), stop, refusals)

    # ---- generators ---------------------------------------------------------------------

    def _unary_fns(self, entry: Entry) -> list[Lam]:
        constants = entry.node is TOKENS
        key = (entry.sem.vset, constants)
        fns = self._unary.get(key)
        if fns is None:
            fns = P.unary_library(self.ev.values(entry.sem.vset), self.pools, constants=constants)
            self._unary[key] = fns
        return fns

    def _maps(self, c: int) -> None:
        """Maps of cost c: a tier-t function on an expression of cost c - 1 - (t - 1)."""
        for tier in (1, 2):
            for e in list(self.levels.get(c - OP_COST[Op.MAP] - (tier - 1), ())):
                if _chain(e.node) >= self.cfg.max_map_chain or e.ops >= self.cfg.max_elementwise_ops:
                    continue
                for fn in self._unary_fns(e):
                    if fn.tier != tier:
                        continue
                    sem = self.ev.map(fn, e.sem)
                    self._tick()
                    if sem is not None:
                        self.stats["maps"] += 1
                        self._add(make(Op.MAP, (e.node,), fn), sem, (e,))

    def _stash_idioms(self, b: Node) -> None:
        """A token test b (e.g. tokens == '(') seeds the running-sum blocks over it, added
        at their discounted cost: signed prefix sums are 3-4 operations deep, too deep for
        plain enumeration to reach in seconds, and common in sequence rules."""
        if self.idiom_seeds >= self.cfg.max_idiom_seeds:
            return
        self.idiom_seeds += 1
        L = self.batch.width
        for node in (B.prefix_count(b, L), B.prefix_balance(b, L), B.balance_offset(b)):
            self.idiom_stash.setdefault(node.cost, []).append(node)

    def _idioms(self, c: int) -> None:
        for node in self.idiom_stash.pop(c, ()):
            sem = self.ev.evaluate(node)
            if isinstance(sem, Sem):
                self._add(node, sem)

    def _widths(self, c: int) -> None:
        for node, sem in self.width_stash.pop(c, ()):
            self.stats["widths"] += 1
            self._add(node, sem)

    def _aggregates(self, c: int) -> None:
        budget = c - OP_COST[Op.AGGREGATE]
        for cs in range(0, budget + 1):
            sels = self.sel_levels.get(cs, ())
            exact = [(s, s.pick) for s in sels if s.pick is not None]
            for v in list(self.levels.get(budget - cs, ())):
                if v.node.op is Op.MAP:
                    continue  # Aggregate(s, f(v)) is f(Aggregate(s, v)), made by the Map stage
                for s, pick in exact:
                    out = np.take_along_axis(v.sem.codes, pick, axis=1)
                    bad = _or(s.bad, s.pick_bad, v.sem.bad)
                    self.stats["aggregates"] += 1
                    self._add(make(Op.AGGREGATE, (s.node, v.node)), Sem(out, v.sem.vset, bad))
            if self.int_tokens and budget - cs == 0:
                self._uniform_aggregates([s for s in sels if s.pick is None])

    def _uniform_aggregates(self, sels: Sequence[SelEntry]) -> None:
        """Aggregates of int tokens over selections that may hold several equal values."""
        tokens = self.levels[0][0]
        for s in sels:
            self._tick()
            sel = self.ev.select(s.pred, s.k.sem, s.q.sem)
            out = self.ev.aggregate(sel, tokens.sem) if sel is not None else None
            if out is not None:
                self.stats["aggregates"] += 1
                self._add(make(Op.AGGREGATE, (s.node, TOKENS)), out)

    def _means(self, c: int) -> None:
        """Numerical Aggregates (the mean of a 0/1 indicator) for numerical targets."""
        if not self.numerical:
            return
        budget = c - OP_COST[Op.MEAN] - OP_COST[Op.NUMMAP]
        for cs in range(0, budget + 1):
            sels = self.sel_levels.get(cs, ())
            for b in list(self.levels.get(budget - cs, ())):
                if b.kind != "bool":
                    continue
                ind = self.ev.nummap(P.TO_INT, b.sem)
                if ind is None:
                    continue
                ind_node = make(Op.NUMMAP, (b.node,), P.TO_INT)
                for s in sels:
                    sel = self.ev.select(s.pred, s.k.sem, s.q.sem)
                    if sel is None:
                        continue
                    self.stats["means"] += 1
                    self._tick()
                    self._add_mean(make(Op.MEAN, (s.node, ind_node)), self.ev.mean(sel, ind))

    def _add_mean(self, node: Node, sem: NumSem) -> None:
        vals = np.where(self.mask, np.round(sem.values, 6), np.nan)
        if sem.bad is not None:
            vals[sem.bad] = -1.0
        sig = hash(vals.tobytes())
        if sig in self.seen_num:
            return
        self.seen_num.add(sig)
        got = sem.values[: self.n][self.imask]
        if np.all(np.abs(got - self.target_num[self.imask]) <= NUMERIC_TOLERANCE):
            self._record(node, sig, sem.bad)

    def _seqmaps(self, c: int) -> None:
        """SequenceMaps of cost c: f(a, b) with cost(a) + cost(b) + 2 + (tier - 1) == c."""
        for tier in (1, 2):
            budget = c - OP_COST[Op.SEQMAP] - (tier - 1)
            for ca in range(0, budget + 1):
                cb = budget - ca
                A = list(self.levels.get(ca, ()))
                B = list(self.levels.get(cb, ()))
                for ia, a in enumerate(A):
                    for ib, b in enumerate(B):
                        if a is b or not _joinable(a, b) or a.ops + b.ops >= self.cfg.max_elementwise_ops:
                            continue
                        first = (ca, ia) < (cb, ib)
                        for fn in self._binary_fns(a.kind, b.kind):
                            if fn.lam.tier != tier or (fn.commutative and not first):
                                continue
                            sem = self.ev.seqmap(fn.lam, a.sem, b.sem)
                            self._tick()
                            if sem is not None:
                                self.stats["seqmaps"] += 1
                                self._add(make(Op.SEQMAP, (a.node, b.node), fn.lam), sem, (a, b))

    def _binary_fns(self, ka: str, kb: str) -> list[P.Binary]:
        key = (ka, kb)
        if key not in self._binary:
            self._binary[key] = P.binary_library(ka, kb, self.pools)
        return self._binary[key]

    def _preds(self, k: Entry, q: Entry) -> list[Pred]:
        preds: list[Pred] = []
        if k.node is TOKENS and q.node is TOKENS:
            preds += [P.BY_NAME["TRUE"], P.BY_NAME["FALSE"]]
        if k.kind == "bool" and q.node is TOKENS:
            preds.append(P.KEY_TRUE)
        if k.kind == q.kind and k.kind in ("int", "str", "tuple"):
            preds += list(P.ORDERED)
            if k.kind == "tuple":
                preds += list(P.PRODUCT)
        elif k.kind == q.kind == "bool":
            preds += [P.BY_NAME["EQ"], P.BY_NAME["NEQ"]]
        return preds

    def _selects(self, c: int) -> None:
        """Selectors of cost c: one side a plain input (tokens/indices), both sides cheap,
        or the same expression on both sides (a histogram of anything)."""
        pairs: list[tuple[Entry, Entry]] = []
        for ck in range(0, c + 1):
            cq = c - ck
            if min(ck, cq) > 0 and max(ck, cq) > 1:
                continue
            for k in self.levels.get(ck, ()):
                for q in self.levels.get(cq, ()):
                    if min(ck, cq) > 0 and k is not q and k.support is not None and k.support == q.support:
                        continue  # two different maps of one input: a fixed pattern, not a rule
                    pairs.append((k, q))
        if c >= 2:
            pairs += [(x, x) for x in self.levels.get(c, ())]
        made = 0
        for k, q in pairs:
            for pred in self._preds(k, q):
                if made >= self.cfg.max_selectors_per_level:
                    return
                self._tick()
                sel = self.ev.select(pred, k.sem, q.sem)
                if sel is not None:
                    made += 1
                    self._add_selector(make(Op.SELECT, (k.node, q.node), pred=pred), k, q, pred, sel)

    def _add_selector(self, node: Node, k: Entry, q: Entry, pred: Pred, sel: SelSem) -> None:
        self.stats["selects"] += 1
        m = sel.matrix
        if sel.bad is not None:
            m = m.copy()
            m[sel.bad] = True
        sig = hash(m.tobytes())
        if sig in self.seen_sel:
            return
        self.seen_sel.add(sig)
        width = sel.matrix.view(np.uint8) @ self.ones
        wnode = make(Op.WIDTH, (node,))
        self.width_stash.setdefault(wnode.cost, []).append(
            (wnode, Sem(self.ev.int_codes[width], self.ev.width_vset, sel.bad)))
        ok = (width == 1) | ~self.mask
        exact = bool(ok[: self.n].all())
        some = bool(((width >= 1) | ~self.mask)[: self.n].all())
        if exact:
            row_bad = ~ok.all(-1)
            entry = SelEntry(node, k, q, pred, sel.matrix.argmax(-1), row_bad if row_bad.any() else None, sel.bad)
        elif self.numerical or (some and self.int_tokens):
            entry = SelEntry(node, k, q, pred, None, None, sel.bad)  # means; Aggregates of equal ints
        else:
            return
        self.sel_levels.setdefault(node.cost, []).append(entry)


def _joinable(a: Entry, b: Entry) -> bool:
    """A SequenceMap of two elementwise expressions must join one function of the tokens
    with one function of the indices; otherwise it is a table over the same inputs."""
    if a.support is None or b.support is None:
        return True
    return len(a.support) == 1 and len(b.support) == 1 and a.support != b.support


def _or(*bads: np.ndarray | None) -> np.ndarray | None:
    present = [b for b in bads if b is not None]
    if not present:
        return None
    out = present[0].copy()
    for b in present[1:]:
        out = out | b
    return out
