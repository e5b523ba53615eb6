"""CoNN 'length': The length of the sequence, at every position.

Input vocab:  {'a', 'b', 'c'}
Output:       categorical (broadcast), values [1, 2, 3, 4, 5, 6, 7, 8]
Max length:   16 tokens (compiled), proven on inputs up to 8 tokens
Found by:     hand-written
Verified:     85/85 task examples (100.0%) by running the compiled model
Model:        1 layers, 1 heads, residual width 40, 4529 parameters
Task file:    rule_examples/length.jsonl (sha256 c504a582cdcc)

Weights: weights.npz beside this file; rebuild them with tracr from `program` using
the compiler settings in conn.json.
"""

"""length: the sequence length, broadcast. 1 layer (SelectorWidth of an all-true selector)."""
from tracr.rasp import rasp

program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
