"""CoNN 'reverse': Reverse the sequence.

Input vocab:  {'a', 'b', 'c', 'd', 'e'}
Output:       categorical (sequence), values ['a', 'b', 'c', 'd', 'e']
Max length:   16 tokens (compiled); proven up to 16 tokens, and longer inputs are refused unless asked for
Found by:     hand-written
Verified:     proven on inputs up to 16 tokens (compiled for 16) by the oracle
              rule_examples/generate.py:reverse on 22090 inputs (every input of lengths 1-6,
              sampled beyond), by running the compiled model
Model:        3 layers, 1 heads, residual width 79, 164652 parameters
Task file:    rule_examples/reverse.jsonl (sha256 345f32e1e0c8)

Weights: weights.npz beside this file; rebuild them with tracr from `program` using
the compiler settings in conn.json.
"""

"""reverse: position i gets token length-1-i.

3 layers: length (attention + MLP), the source index length-1-i (MLP), read it (attention).
"""
from tracr.rasp import rasp

length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
opp = rasp.categorical(rasp.SequenceMap(lambda n, i: n - i - 1, length, rasp.indices)).named("opp_index")
flip = rasp.Select(rasp.indices, opp, rasp.Comparison.EQ).named("select_opp")
program = rasp.categorical(rasp.Aggregate(flip, rasp.tokens)).named("reverse")
