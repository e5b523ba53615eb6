"""CoNN 'copy': Output the input token at each position (identity).

Input vocab:  {'a', 'b', 'c', 'd', 'e'}
Output:       categorical (sequence), values ['a', 'b', 'c', 'd', 'e']
Max length:   16 tokens (compiled), proven on inputs up to 8 tokens
Found by:     hand-written
Verified:     85/85 task examples (100.0%) by running the compiled model
Model:        1 layers, 1 heads, residual width 28, 1128 parameters
Task file:    rule_examples/copy.jsonl (sha256 7a4a45211fe6)

Weights: weights.npz beside this file; rebuild them with tracr from `program` using
the compiler settings in conn.json.
"""

"""copy: the input token at each position (identity). 1 layer (one MLP)."""
from tracr.rasp import rasp

program = rasp.categorical(rasp.Map(lambda x: x, rasp.tokens)).named("copy")
