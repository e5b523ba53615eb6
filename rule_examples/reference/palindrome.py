"""palindrome: True everywhere iff the sequence equals its reverse.

5 layers:
  1. length (SelectorWidth); (index, token) pairs (MLP)
  2. query (length-1-i, token_i) (MLP)
  3. mismatch_i = 1 if the token at length-1-i differs from token_i, else 0 (SelectorWidth)
  4. number of positions with a mismatch (SelectorWidth)
  5. == 0 (MLP)

A 4-layer version (numerical means instead of the two SelectorWidths) evaluates right
but its compiled model says False for every palindrome: a numerical mean that selects
nothing should give 0 via the BOS token, but tracr's attention is too soft for that once
the attention space is ~100 wide (see README, key_size).
"""
from tracr.rasp import rasp

length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
idx_tok = rasp.categorical(rasp.SequenceMap(lambda i, t: (i, t), rasp.indices, rasp.tokens)).named("idx_tok")
mirror = rasp.categorical(rasp.SequenceMap(
    lambda n, it: (n - it[0] - 1 if n > it[0] else -1, it[1]), length, idx_tok)).named("mirror_query")
mismatch = rasp.SelectorWidth(rasp.Select(
    idx_tok, mirror, lambda k, q: k[0] == q[0] and k[1] != q[1])).named("mismatch")
n_mismatch = rasp.SelectorWidth(rasp.Select(mismatch, mismatch, lambda k, q: k > 0)).named("n_mismatch")
program = rasp.categorical(rasp.Map(lambda c: c == 0, n_mismatch)).named("palindrome")
