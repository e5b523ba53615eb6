"""The fusion spec: defaults per vocab and output, validation errors, clashes, text rendering."""

from __future__ import annotations

import json

import pytest

from autoconn.conn.artifact import Library
from autoconn.fusion.metadata import (
    FusionOverrides,
    FusionSpec,
    FusionSpecError,
    build_spec,
    check_together,
    format_number,
    spec_of_meta,
    validate,
)
from tests.fusion.conftest import LIBRARY


def test_defaults_for_character_tokens_and_a_sequence_output():
    spec = build_spec("sort", [0, 1, 2, 3], "sequence", output_values=[0, 1, 2, 3])
    assert (spec.operand_start, spec.trigger, spec.split) == ("sort(", ")=", "char")
    assert spec.token_map == {"0": 0, "1": 1, "2": 2, "3": 3}
    assert spec.output.positions == "all" and spec.output.join == ""


def test_default_brackets_step_aside_for_a_vocab_that_uses_them():
    dyck1 = build_spec("dyck1", ["(", ")"], "broadcast", output_values=[False, True])
    assert (dyck1.operand_start, dyck1.trigger) == ("dyck1[", "]=")
    assert dyck1.parse_operand("(())") == ("(", "(", ")", ")")
    dyck2 = build_spec("dyck2", ["(", ")", "[", "]"], "broadcast", output_values=[False, True])
    assert (dyck2.operand_start, dyck2.trigger) == ("dyck2{", "}=")
    with pytest.raises(FusionSpecError, match=r"e\.g\. '\]='"):  # the user's own trigger is never replaced
        build_spec("dyck1", ["(", ")"], "broadcast", FusionOverrides(trigger=")="))


def test_defaults_for_word_tokens_and_a_broadcast_output():
    spec = build_spec("all_true", [False, True], "broadcast", output_values=[False, True])
    assert spec.split == "space" and spec.token_map == {"False": False, "True": True}
    assert spec.output.positions == "first" and spec.output.join == " "
    assert spec.parse_operand("True False  True") == (True, False, True)


def test_multi_character_outputs_are_separated_by_default():
    spec = build_spec("hist", ["a", "b"], "sequence", output_values=list(range(17)))
    assert spec.split == "char" and spec.output.join == " "
    assert spec.render_output([1, 12, 3]) == "1 12 3"


def test_numerical_outputs_are_written_compactly():
    spec = build_spec("frac", ["a", "b"], "sequence", output_kind="numerical")
    assert spec.render_output([1.0000000001, 0.5, 1 / 3, -1e-12]) == "1 0.5 0.3333 0"
    assert format_number(2.0) == "2" and format_number(0.12345) == "0.1235"


def test_bools_and_ints_keep_their_types_through_the_token_map():
    spec = build_spec("mixed", [1, True], "sequence", output_values=[1, True])
    assert spec.parse_operand("1 True") == (1, True)
    assert type(spec.parse_operand("1 True")[1]) is bool  # type: ignore[index]
    assert spec.render_output([True, 1]) == "True 1"


def test_overrides_replace_defaults_and_survive_json():
    spec = build_spec("sort", [0, 1], "sequence", FusionOverrides(trigger=" =", operand_start="SORT[", output_positions="last"))
    again = FusionSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec and again.trigger == " =" and again.output.positions == "last"


@pytest.mark.parametrize("overrides, message", [
    (FusionOverrides(trigger=""), "trigger is empty"),
    (FusionOverrides(operand_start=""), "operand start is empty"),
    (FusionOverrides(trigger="1"), "can be written with operand text"),   # 'sort(21' would fire early
    (FusionOverrides(trigger="0="), "can be written with operand text"),
    (FusionOverrides(trigger="(", operand_start="sort("), "occurs inside the operand start"),
    (FusionOverrides(trigger="](=", operand_start="]("), "occurs inside the trigger"),
    (FusionOverrides(split="words"), "choose 'char'"),
    (FusionOverrides(output_positions="middle"), "choose all, first or last"),
    (FusionOverrides(output_join=","), "output join"),
])
def test_specs_that_cannot_work_are_refused_with_what_to_do(overrides: FusionOverrides, message: str):
    with pytest.raises(FusionSpecError, match=message):
        build_spec("sort", [0, 1, 2], "sequence", overrides)


def test_a_trigger_that_only_ends_with_vocab_text_is_allowed():
    spec = build_spec("sort", [0, 1, 2], "sequence", FusionOverrides(trigger="=1"))  # '=' never appears in an operand
    assert spec.trigger == "=1"
    words = build_spec("any", [False, True], "broadcast", FusionOverrides(trigger=" ->"))  # after a space, '->'
    assert words.parse_operand("True False ") == (True, False)
    with pytest.raises(FusionSpecError, match="can be written with operand text"):
        build_spec("any", [False, True], "broadcast", FusionOverrides(trigger=" "))  # fires between tokens


def test_char_split_needs_single_character_tokens():
    with pytest.raises(FusionSpecError, match="use --split space"):
        build_spec("words", ["ab", "c"], "sequence", FusionOverrides(split="char"))


def test_token_map_must_stay_inside_the_vocab():
    spec = build_spec("sort", [0, 1], "sequence")
    bad = FusionSpec(spec.operand_start, spec.trigger, spec.split, {"0": 0, "7": 7}, spec.output)
    with pytest.raises(FusionSpecError, match="not in the CoNN's vocab"):
        validate(bad, [0, 1])
    true_for_one = FusionSpec(spec.operand_start, spec.trigger, spec.split, {"1": True}, spec.output)
    with pytest.raises(FusionSpecError, match="not in the CoNN's vocab"):
        validate(true_for_one, [0, 1])  # True is not the token 1


def test_conns_fused_together_need_distinct_operand_start_and_trigger():
    a = build_spec("sort", [0, 1], "sequence")
    b = build_spec("sort2", [0, 1], "sequence", FusionOverrides(operand_start="sort("))
    with pytest.raises(FusionSpecError, match="'sort' and 'sort2' both use operand start 'sort\\(' and trigger"):
        check_together({"sort": a, "sort2": b})
    check_together({"sort": a, "sort3": build_spec("sort3", [0, 1], "sequence")})


def test_every_committed_conn_has_a_valid_stored_spec():
    library = Library(LIBRARY)
    index = library.read_index()["conns"]
    for entry in library.entries():
        assert entry.meta["fusion"] is not None, f"{entry.name}: run `autoconn set-fusion {entry.name}` to backfill"
        spec = spec_of_meta(entry.name, entry.meta)
        assert spec.operand_start == f"{entry.name}(" and spec.trigger == ")="
        assert index[entry.name]["fusion"] == spec.summary()
