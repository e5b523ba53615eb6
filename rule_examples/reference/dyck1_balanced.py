"""dyck1_balanced: True everywhere iff the '(' ')' string is balanced.

With C = number of ')' and o_i, c_i the '(' and ')' counts in positions 0..i, let
w_i = o_i + (C - c_i) = depth_i + C (one SelectorWidth). The string is balanced iff
2C = length and no w_i < C.

3 layers:
  1. C, length (SelectorWidths); (is_open, index) (MLP)
  2. w (SelectorWidth); query (C, 2C == length) and a numerical 1 (MLPs)
  3. mean of 1 over positions j with w_j < C (or all positions if 2C != length)
     (numerical attention), == 0 (MLP)
"""
from tracr.rasp import rasp

n_close = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == ")")).named("n_close")
length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
open_idx = rasp.categorical(
    rasp.SequenceMap(lambda t, i: (t == "(", i), rasp.tokens, rasp.indices)).named("open_idx")
w = rasp.SelectorWidth(rasp.Select(
    open_idx, rasp.indices, lambda k, q: (k[1] <= q) if k[0] else (k[1] > q))).named("depth_plus_C")
query = rasp.categorical(
    rasp.SequenceMap(lambda c, n: (c, 2 * c == n), n_close, length)).named("C_and_even")
one = rasp.numerical(rasp.Map(lambda n: 1 if n > 0 else 0, length)).named("one")
bad = rasp.Select(w, query, lambda k, q: k < q[0] or not q[1]).named("bad")
frac_bad = rasp.numerical(rasp.Aggregate(bad, one, default=0)).named("frac_bad")
program = rasp.categorical(rasp.Map(lambda x: x == 0, frac_bad)).named("dyck1_balanced")
