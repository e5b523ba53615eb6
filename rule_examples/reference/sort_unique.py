"""sort_unique: distinct digits sorted ascending.

2 layers: target position = number of smaller tokens (SelectorWidth), then each position
reads the token whose target is its index (exactly one, since tokens are distinct).
"""
from tracr.rasp import rasp

smaller = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.LT).named("smaller")
target = rasp.SelectorWidth(smaller).named("target_pos")
program = rasp.categorical(
    rasp.Aggregate(rasp.Select(target, rasp.indices, rasp.Comparison.EQ), rasp.tokens)).named("sort_unique")
