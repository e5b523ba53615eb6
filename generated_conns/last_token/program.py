"""CoNN 'last_token': The last token of the sequence (last letter), at every position.

Input vocab:  {'a', 'b', 'c', 'd', 'e'}
Output:       categorical (broadcast), values ['a', 'b', 'c', 'd', 'e']
Max length:   16 tokens (compiled); proven up to 16 tokens, and longer inputs are refused unless asked for
Found by:     hand-written
Verified:     proven on inputs up to 16 tokens (compiled for 16) by the oracle
              rule_examples/generate.py:last_token on 22090 inputs (every input of lengths 1-6,
              sampled beyond), by running the compiled model
Model:        2 layers, 1 heads, residual width 47, 15034 parameters
Task file:    rule_examples/last_token.jsonl (sha256 9ed938dc2c2c)

Weights: weights.npz beside this file; rebuild them with tracr from `program` using
the compiler settings in conn.json.
"""

"""last_token: the last token, broadcast. 2 layers: length, then read position length-1."""
from tracr.rasp import rasp

length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
last = rasp.Select(rasp.indices, length, lambda k, q: k == q - 1).named("select_last")
program = rasp.categorical(rasp.Aggregate(last, rasp.tokens)).named("last_token")
