"""CoNN 'sort_unique': Sort distinct digits ascending.

Input vocab:  {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
Output:       categorical (sequence), values [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
Max length:   16 tokens (compiled); proven up to 10 tokens, and longer inputs are refused unless asked for
Found by:     hand-written
Verified:     proven on inputs up to 10 tokens (compiled for 16) by the oracle
              rule_examples/generate.py:sort_unique on 6859 inputs (every input of lengths 1-4,
              sampled beyond); inputs of 11-16 tokens are refused unless asked for, by running
              the compiled model
Model:        2 layers, 1 heads, residual width 57, 18017 parameters
Task file:    rule_examples/sort_unique.jsonl (sha256 a980e5231a2e)

Weights: weights.npz beside this file; rebuild them with tracr from `program` using
the compiler settings in conn.json.
"""

"""sort_unique: distinct digits sorted ascending.

2 layers: target position = number of smaller tokens (SelectorWidth), then each position
reads the token whose target is its index (exactly one, since tokens are distinct).
"""
from tracr.rasp import rasp

smaller = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.LT).named("smaller")
target = rasp.SelectorWidth(smaller).named("target_pos")
program = rasp.categorical(
    rasp.Aggregate(rasp.Select(target, rasp.indices, rasp.Comparison.EQ), rasp.tokens)).named("sort_unique")
