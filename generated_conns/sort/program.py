"""CoNN 'sort': Sort the digits ascending (duplicates kept).

Input vocab:  {0, 1, 2, 3, 4, 5}
Output:       categorical (sequence), values [0, 1, 2, 3, 4, 5]
Max length:   16 tokens (compiled); proven up to 16 tokens, and longer inputs are refused unless asked for
Found by:     search after 1 attempt(s), run 20261202-004006-sort-280b
Verified:     proven on inputs up to 16 tokens (compiled for 16) by the oracle
              rule_examples/generate.py:sort on 12146 inputs (every input of lengths 1-5,
              sampled beyond) and 13/13 sealed examples no inducer saw, by running the compiled
              model
Model:        3 layers, 1 heads, residual width 145, 259705 parameters
Task file:    rule_examples/sort.jsonl (sha256 71c21b686074)

Weights: weights.npz beside this file; rebuild them with tracr from `program` using
the compiler settings in conn.json.
"""

"""Found by the offline search: aggregate(select(width(select((tokens, indices), (tokens, indices), LT)), indices, EQ), tokens) (3 layers, cost 8)."""

from tracr.rasp import rasp

tok_pair_idx = rasp.SequenceMap(lambda x, y: (x, y), rasp.tokens, rasp.indices).named('tok_pair_idx')
select = rasp.Select(tok_pair_idx, tok_pair_idx, rasp.Comparison.LT).named('select')
n_smaller_tok_pair_idx = rasp.SelectorWidth(select).named('n_smaller_tok_pair_idx')
select_2 = rasp.Select(n_smaller_tok_pair_idx, rasp.indices, rasp.Comparison.EQ).named('select_2')
program = rasp.categorical(rasp.Aggregate(select_2, rasp.tokens)).named('program')
