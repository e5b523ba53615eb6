"""hist: how often each position's token occurs. 1 layer (SelectorWidth of token equality)."""
from tracr.rasp import rasp

program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)).named("hist")
