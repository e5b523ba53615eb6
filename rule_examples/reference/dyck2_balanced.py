"""dyck2_balanced: True everywhere iff the '()' '[]' string is balanced and properly nested.

Valid for inputs up to MAX_LEN = 16 tokens (the compiled max_seq_len).

Idea. Give each bracket a level: an opener the depth after it, a closer the depth before
it. If the depth never goes negative, openers and closers alternate at each level, so the
r-th opener at level L is matched by the r-th closer at level L, and (L, r) names a pair.
The string is balanced iff #closers = length/2, every closer has level >= 1 (the depth
never went negative) and an opener of the same type with the same (L, r) exists. Pairs
that cannot occur in a balanced string of <= MAX_LEN tokens (level > 8, L + r > 9,
too few positions left to close) are sent to a sentinel: this keeps every attention space
under ~90 dimensions, which tracr's compiled attention needs (see README, key_size).

8 layers:
  1. C = closers, n = length (SelectorWidths); opener index, (is_open, index) (MLPs)
  2. o = openers in 0..i (SelectorWidth); ok = (2C == n) (MLP)
  3. (is_open, L, i) (MLP)
  4. cnt = closers at level L at positions <= i (SelectorWidth); rank = cnt (+1 for an
     opener); (is_open, type, L) (MLP)
  5. opener key (type, L, rank) / closer query (type, L, rank) (MLPs)
  6. partners: a closer counts its opener; an opener counts every closer (SelectorWidth)
  7. bad = positions without partner, or all positions if not ok (SelectorWidth)
  8. bad == 0 (MLP)
"""
from tracr.rasp import rasp

MAX_LEN = 16
HALF = MAX_LEN // 2
OPEN = ("(", "[")


def level(o, is_open, p):
    """The bracket's level if it can be part of a balanced string of <= MAX_LEN, else 0."""
    if o > p + 1:  # impossible count: keeps the value sets (attention spaces) small
        return 0
    depth = 2 * o - (p + 1)  # depth after position p
    if is_open:
        lvl, ok = depth, depth <= min(HALF, MAX_LEN - 1 - p)  # depth closers still needed
    else:
        lvl, ok = depth + 1, depth + 1 <= min(HALF, MAX_LEN - p)
    return lvl if (ok and lvl >= 1) else 0


def _level_idx(o, kp):
    lvl = level(o, kp[0], kp[1])
    return (kp[0], lvl, kp[1]) if lvl else "bad"


def _kind_type_level(li, tok):
    return "bad" if li == "bad" else (li[0], tok in "[]", li[1])


def _pair(cnt, ktl, want_open):
    if ktl == "bad":
        return "x" if want_open else "bad"
    is_open, typ, lvl = ktl
    rank = cnt + (1 if is_open else 0)
    if is_open != want_open:
        return "y" if want_open else "o"  # closers' key / openers' query
    return (typ, lvl, rank) if lvl + rank <= HALF + 1 else ("x" if want_open else "bad")


n_close = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k not in OPEN)).named("n_close")
length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
open_at = rasp.categorical(
    rasp.SequenceMap(lambda t, i: i if t in OPEN else -1, rasp.tokens, rasp.indices)).named("open_at")
kind_idx = rasp.categorical(
    rasp.SequenceMap(lambda t, i: (t in OPEN, i), rasp.tokens, rasp.indices)).named("kind_idx")

n_open = rasp.SelectorWidth(rasp.Select(open_at, rasp.indices, lambda k, q: 0 <= k <= q)).named("prefix_opens")
ok = rasp.categorical(rasp.SequenceMap(lambda c, n: 2 * c == n, n_close, length)).named("half_closers")

level_idx = rasp.categorical(rasp.SequenceMap(_level_idx, n_open, kind_idx)).named("kind_level_idx")
cnt = rasp.SelectorWidth(rasp.Select(
    level_idx, level_idx,
    lambda k, q: k != "bad" and q != "bad" and not k[0] and k[1] == q[1] and k[2] <= q[2])).named("closers_at_level")
ktl = rasp.categorical(rasp.SequenceMap(_kind_type_level, level_idx, rasp.tokens)).named("kind_type_level")

pair_key = rasp.categorical(rasp.SequenceMap(lambda c, k: _pair(c, k, True), cnt, ktl)).named("opener_pair_key")
pair_query = rasp.categorical(rasp.SequenceMap(lambda c, k: _pair(c, k, False), cnt, ktl)).named("closer_pair_query")
partners = rasp.SelectorWidth(rasp.Select(
    pair_key, pair_query, lambda k, q: k == "y" if q == "o" else k == q)).named("partners")
n_bad = rasp.SelectorWidth(rasp.Select(partners, ok, lambda k, q: k == 0 or not q)).named("n_bad")
program = rasp.categorical(rasp.Map(lambda b: b == 0, n_bad)).named("dyck2_balanced")
