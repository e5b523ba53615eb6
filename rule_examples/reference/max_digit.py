"""max_digit: the largest digit, broadcast.

2 layers: for each position, how many digits are larger (SelectorWidth); read the
positions where none is (attention).

That attention may select several positions, but they all hold the same digit: the
compiled head averages identical one-hot vectors (exactly that digit), and rasp.evaluate
averages equal ints (7 -> 7.0, equal to 7). Exact-one selection would need (digit, index)
keys: one more layer and a 10x larger attention space.
"""
from tracr.rasp import rasp

n_larger = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.GT)).named("n_larger")
is_max = rasp.Select(n_larger, n_larger, lambda k, q: k == 0).named("select_max")
program = rasp.categorical(rasp.Aggregate(is_max, rasp.tokens)).named("max_digit")
