"""most_freq: the most frequent token, broadcast; ties go to the smallest token.

4 layers:
  1. hist (SelectorWidth); the token's code 0..3 (MLP)
  2. key (count, token) (MLP)
  3. for each position, how many positions beat it: higher count, or equal count and a
     smaller token (SelectorWidth). The winners are exactly the occurrences of the answer.
  4. read the code at the winners (attention), code -> token (MLP)

The last attention selects every occurrence of the winning token; they hold the same
code, so the compiled head averages identical one-hot vectors (exact) and rasp.evaluate
averages equal ints (that is why the code, not the token string, is read). Exact-one
selection needs (count, token, index) keys: a 16x larger attention space, which tracr's
unscaled attention (see README) cannot resolve.
"""
from tracr.rasp import rasp

TOKENS = "abcd"

hist = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)).named("hist")
code = rasp.categorical(rasp.Map(lambda t: TOKENS.index(t) if t in TOKENS else 0, rasp.tokens)).named("code")
key = rasp.categorical(rasp.SequenceMap(lambda h, t: (h, t), hist, rasp.tokens)).named("count_token")
n_better = rasp.SelectorWidth(rasp.Select(
    key, key, lambda k, q: k[0] > q[0] or (k[0] == q[0] and k[1] < q[1]))).named("n_better")
winners = rasp.Select(n_better, n_better, lambda k, q: k == 0).named("select_winners")
win_code = rasp.categorical(rasp.Aggregate(winners, code)).named("winner_code")
program = rasp.categorical(rasp.Map(lambda c: TOKENS[int(c)], win_code)).named("most_freq")
