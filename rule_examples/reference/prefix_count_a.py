"""prefix_count_a: number of "a" tokens at positions 0..i.

2 layers: an MLP marks each "a" with its index (-1 elsewhere), then SelectorWidth counts
marked positions k <= i.
"""
from tracr.rasp import rasp

a_at = rasp.categorical(
    rasp.SequenceMap(lambda t, i: i if t == "a" else -1, rasp.tokens, rasp.indices)).named("a_at")
program = rasp.SelectorWidth(
    rasp.Select(a_at, rasp.indices, lambda k, q: 0 <= k <= q)).named("prefix_count_a")
