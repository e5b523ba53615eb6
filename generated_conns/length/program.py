"""CoNN 'length': The length of the sequence, at every position.

Input vocab:  {'a', 'b', 'c'}
Output:       categorical (broadcast), values [1, 2, 3, 4, 5, 6, 7, 8]
Max length:   16 tokens (compiled); proven up to 16 tokens, and longer inputs are refused unless asked for
Found by:     hand-written
Verified:     proven on inputs up to 16 tokens (compiled for 16) by the oracle
              rule_examples/generate.py:length on 31315 inputs (every input of lengths 1-9,
              sampled beyond), by running the compiled model
Model:        1 layers, 1 heads, residual width 40, 4529 parameters
Task file:    rule_examples/length.jsonl (sha256 c504a582cdcc)

Weights: weights.npz beside this file; rebuild them with tracr from `program` using
the compiler settings in conn.json.
"""

"""length: the sequence length, broadcast. 1 layer (SelectorWidth of an all-true selector)."""
from tracr.rasp import rasp

program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
