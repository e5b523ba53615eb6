"""The gate opens exactly where a trigger closes a readable operand, and nowhere else."""

from __future__ import annotations

from autoconn.fusion.gate import Fire, GateRule, Refusal, decide
from autoconn.fusion.metadata import FusionOverrides, build_spec

SORT = GateRule("sort", build_spec("sort", [0, 1, 2, 3], "sequence"), max_seq_len=4)
LENGTH = GateRule("length", build_spec("length", ["a", "b"], "broadcast"), max_seq_len=8)
RULES = [SORT, LENGTH]


def decisions(text: str) -> dict[int, object]:
    """The gate's decision after every prefix of `text` (only where it is not None)."""
    return {end: d for end in range(len(text) + 1) if (d := decide(text[:end], RULES)) is not None}


def test_fires_only_right_after_each_trigger_with_an_open_operand():
    text = "x)= sort(312)=123 then length(ab)=2 and )= again"
    found = decisions(text)
    assert set(found) == {text.index("sort(312)=") + 10, text.index("length(ab)=") + 11}
    first, second = (found[k] for k in sorted(found))
    assert first == Fire("sort", "312", (3, 1, 2)) and second == Fire("length", "ab", ("a", "b"))


def test_a_trigger_without_an_operand_start_is_ordinary_text():
    assert decisions("1)= 2)= (3)=") == {}


def test_an_already_closed_operand_does_not_fire_again():
    assert decide("sort(12)=12, 3)=", RULES) is None


def test_out_of_vocab_too_long_and_empty_operands_are_refused_with_reasons():
    assert decide("sort(3x1)=", RULES) == Refusal("sort", "3x1", "operand '3x1': 'x' is not in the CoNN's vocab")
    too_long = decide("sort(01230)=", RULES)
    assert isinstance(too_long, Refusal) and "5 tokens; sort is proven on at most 4" in too_long.reason
    assert isinstance(decide("sort()=", RULES), Refusal)
    assert isinstance(decide("sort(1 2)=", RULES), Refusal)  # char split: the space is not a token


def test_the_innermost_operand_start_wins_and_longer_starts_beat_their_suffixes():
    unsort = GateRule("unsort", build_spec("unsort", [0, 1, 2, 3], "sequence"), 4)
    assert decide("unsort(21)=", [SORT, unsort]) == Fire("unsort", "21", (2, 1))
    assert decide("unsort(21)=", [unsort, SORT]) == Fire("unsort", "21", (2, 1))
    assert decide("length(ab sort(21)=", RULES) == Fire("sort", "21", (2, 1))


def test_custom_trigger_and_space_split():
    rule = GateRule("any", build_spec("any", [False, True], "broadcast",
                                      FusionOverrides(operand_start="ANY[", trigger="] ->")), 8)
    assert decide("ANY[False True] ->", [rule]) == Fire("any", "False True", (False, True))
    assert decide("ANY[False True]", [rule]) is None
