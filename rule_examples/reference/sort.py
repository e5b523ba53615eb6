"""sort: digits sorted ascending, duplicates kept.

3 layers: (token, index) keys make every position distinct (MLP); target position = number
of keys smaller in (token, index) order (SelectorWidth); each position reads the token
whose target is its index (exactly one) (attention).
"""
from tracr.rasp import rasp

key = rasp.categorical(rasp.SequenceMap(lambda t, i: (t, i), rasp.tokens, rasp.indices)).named("sort_key")
target = rasp.SelectorWidth(rasp.Select(key, key, rasp.Comparison.LT)).named("target_pos")
program = rasp.categorical(
    rasp.Aggregate(rasp.Select(target, rasp.indices, rasp.Comparison.EQ), rasp.tokens)).named("sort")
