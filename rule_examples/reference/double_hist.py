"""double_hist: how many distinct tokens occur exactly as often as this position's token.

3 layers: hist h (SelectorWidth); w = number of positions whose hist equals h
(SelectorWidth) = (number of such distinct tokens) * h; w // h (MLP, guarded division).
"""
from tracr.rasp import rasp

hist = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)).named("hist")
same_hist = rasp.SelectorWidth(rasp.Select(hist, hist, rasp.Comparison.EQ)).named("same_hist_positions")
program = rasp.categorical(
    rasp.SequenceMap(lambda w, h: w // h if h else 0, same_hist, hist)).named("double_hist")
