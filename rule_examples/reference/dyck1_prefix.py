"""dyck1_prefix: at position i, True iff the prefix 0..i is a balanced '(' ')' string.

Prefix i is balanced iff depth_i = 0 and no depth_j < 0 for j <= i, where
depth_j = 2*o_j - (j+1) and o_j counts '(' in positions 0..j.

4 layers:
  1. length (SelectorWidth); '(' marked with its index (MLP)
  2. o (SelectorWidth); a numerical 1 (MLP)
  3. keys (depth_j < 0, j) and queries (i, depth_i != 0) (MLPs)
  4. mean of 1 over {j <= i with depth_j < 0} plus {i itself if depth_i != 0}
     (numerical attention), == 0 (MLP)
"""
from tracr.rasp import rasp

length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
open_at = rasp.categorical(
    rasp.SequenceMap(lambda t, i: i if t == "(" else -1, rasp.tokens, rasp.indices)).named("open_at")
n_open = rasp.SelectorWidth(rasp.Select(open_at, rasp.indices, lambda k, q: 0 <= k <= q)).named("prefix_opens")
one = rasp.numerical(rasp.Map(lambda n: 1 if n > 0 else 0, length)).named("one")
key = rasp.categorical(
    rasp.SequenceMap(lambda o, j: (2 * o < j + 1, j), n_open, rasp.indices)).named("neg_idx")
query = rasp.categorical(
    rasp.SequenceMap(lambda o, i: (i, 2 * o != i + 1), n_open, rasp.indices)).named("idx_nonzero")
bad = rasp.Select(key, query, lambda k, q: (k[0] and k[1] <= q[0]) or (k[1] == q[0] and q[1])).named("bad")
frac_bad = rasp.numerical(rasp.Aggregate(bad, one, default=0)).named("frac_bad")
program = rasp.categorical(rasp.Map(lambda x: x == 0, frac_bad)).named("dyck1_prefix")
