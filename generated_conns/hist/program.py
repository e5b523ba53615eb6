"""CoNN 'hist': At each position, how many times that position's token occurs in the sequence.

Input vocab:  {'a', 'b', 'c', 'd', 'e'}
Output:       categorical (sequence), values [1, 2, 3, 4, 5]
Max length:   16 tokens (compiled); proven up to 16 tokens, and longer inputs are refused unless asked for
Found by:     hand-written
Verified:     proven on inputs up to 16 tokens (compiled for 16) by the oracle
              rule_examples/generate.py:hist on 22090 inputs (every input of lengths 1-6,
              sampled beyond), by running the compiled model
Model:        1 layers, 1 heads, residual width 42, 5179 parameters
Task file:    rule_examples/hist.jsonl (sha256 13d4e99d2379)

Weights: weights.npz beside this file; rebuild them with tracr from `program` using
the compiler settings in conn.json.
"""

"""hist: how often each position's token occurs. 1 layer (SelectorWidth of token equality)."""
from tracr.rasp import rasp

program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)).named("hist")
