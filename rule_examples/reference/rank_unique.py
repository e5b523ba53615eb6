"""rank_unique: how many tokens are smaller than this one. 1 layer (SelectorWidth of key < query)."""
from tracr.rasp import rasp

program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.LT)).named("rank_unique")
