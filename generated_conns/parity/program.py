"""CoNN 'parity': Parity of the number of 1s in a 0/1 sequence (0 even, 1 odd), at every position.

Input vocab:  {0, 1}
Output:       categorical (broadcast), values [0, 1]
Max length:   16 tokens (compiled); proven up to 16 tokens, and longer inputs are refused unless asked for
Found by:     hand-written
Verified:     proven on inputs up to 16 tokens (compiled for 16) by the oracle
              rule_examples/generate.py:parity on 33278 inputs (every input of lengths 1-14,
              sampled beyond), by running the compiled model
Model:        2 layers, 1 heads, residual width 41, 8005 parameters
Task file:    rule_examples/parity.jsonl (sha256 a472965d86f5)

Weights: weights.npz beside this file; rebuild them with tracr from `program` using
the compiler settings in conn.json.
"""

"""parity: number of 1s mod 2, broadcast. 2 layers: count the 1s, then mod 2 (MLP)."""
from tracr.rasp import rasp

ones = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == 1)).named("count_ones")
program = rasp.categorical(rasp.Map(lambda c: c % 2, ones)).named("parity")
