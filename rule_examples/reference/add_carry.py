"""add_carry: resolve carries of per-position digit sums s_i (0..18), most significant first.

out_i = (s_i + carry_in_i) % 10, where carry_in_i = 1 iff the nearest position j > i with
s_j != 9 has s_j >= 10 (a run of 9s passes a carry on). A carry out of position 0 is dropped.

4 layers:
  1. (s != 9, index) pairs and gen = (s >= 10) (MLPs)
  2. c_i = number of non-9 positions right of i (SelectorWidth)
  3. key (c, non9, is position 0), own = (s, c > 0) (MLPs)
  4. read gen at the non-9 position j with c_j = c_i - 1 (the nearest non-9 right of i);
     when c_i = 0 there is none, so the query reads position 0 instead and ignores it --
     always exactly one position; then (s + carry) % 10 (MLP)
"""
from tracr.rasp import rasp

non9_idx = rasp.categorical(
    rasp.SequenceMap(lambda s, i: (s != 9, i), rasp.tokens, rasp.indices)).named("non9_idx")
gen = rasp.categorical(rasp.Map(lambda s: s >= 10, rasp.tokens)).named("gen")
right_non9 = rasp.SelectorWidth(
    rasp.Select(non9_idx, rasp.indices, lambda k, q: k[0] and k[1] > q)).named("right_non9")
key = rasp.categorical(
    rasp.SequenceMap(lambda c, ni: (c, ni[0], ni[1] == 0), right_non9, non9_idx)).named("carry_key")
own = rasp.categorical(
    rasp.SequenceMap(lambda s, c: (s, c > 0), rasp.tokens, right_non9)).named("own")
nearest = rasp.Select(
    key, right_non9,
    lambda k, q: (k[1] and k[0] + 1 == q) if q > 0 else k[2]).named("nearest_non9")
carry_gen = rasp.categorical(rasp.Aggregate(nearest, gen)).named("carry_gen")
program = rasp.categorical(rasp.SequenceMap(
    lambda g, o: (o[0] + (1 if (o[1] and g) else 0)) % 10, carry_gen, own)).named("add_carry")
