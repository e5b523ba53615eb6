"""count_distinct: number of distinct tokens, broadcast.

3 layers: (token, index) pairs (MLP); for each position, how many earlier positions hold
the same token (SelectorWidth); count the positions where that is 0, i.e. first
occurrences (SelectorWidth).
"""
from tracr.rasp import rasp

tok_idx = rasp.categorical(
    rasp.SequenceMap(lambda t, i: (t, i), rasp.tokens, rasp.indices)).named("tok_idx")
earlier_same = rasp.SelectorWidth(
    rasp.Select(tok_idx, tok_idx, lambda k, q: k[0] == q[0] and k[1] < q[1])).named("earlier_same")
program = rasp.SelectorWidth(
    rasp.Select(earlier_same, earlier_same, lambda k, q: k == 0)).named("count_distinct")
