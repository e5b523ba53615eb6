"""CoNN 'copy': Output the input token at each position (identity).

Input vocab:  {'a', 'b', 'c', 'd', 'e'}
Output:       categorical (sequence), values ['a', 'b', 'c', 'd', 'e']
Max length:   16 tokens (compiled); proven up to 16 tokens, and longer inputs are refused unless asked for
Found by:     hand-written
Verified:     proven on inputs up to 16 tokens (compiled for 16) by the oracle
              rule_examples/generate.py:copy on 22090 inputs (every input of lengths 1-6,
              sampled beyond), by running the compiled model
Model:        1 layers, 1 heads, residual width 28, 1128 parameters
Task file:    rule_examples/copy.jsonl (sha256 7a4a45211fe6)

Weights: weights.npz beside this file; rebuild them with tracr from `program` using
the compiler settings in conn.json.
"""

"""copy: the input token at each position (identity). 1 layer (one MLP)."""
from tracr.rasp import rasp

program = rasp.categorical(rasp.Map(lambda x: x, rasp.tokens)).named("copy")
