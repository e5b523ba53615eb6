"""Token-level fusion with real library CoNNs (stored weights, the jitted runtime) and a real
(tiny) character LM: a bigram table that answers every "...)=" with a wrong "0"."""

from __future__ import annotations

import pytest

from autoconn.fusion.conn_tool import FusedConn
from autoconn.fusion.marks import Fallback, Span
from autoconn.fusion.token_level import fuse_decode, fuse_decode_one
from tests.fusion.bigram import BigramLM


def test_the_conn_writes_its_answer_verbatim_where_the_lm_would_be_wrong(lm: BigramLM, library_conns: dict[str, FusedConn]):
    sort = library_conns["sort"]
    alone = fuse_decode_one(lm, [sort], "sort(5213)=", max_new_chars=20, use_conns=False)
    assert alone.completion == "0" and alone.spans == () and alone.stop == "end_of_text"
    fused = fuse_decode_one(lm, [sort], "sort(5213)=", max_new_chars=20)
    expected = "".join(str(v) for v in sort.runtime.run([[5, 2, 1, 3]])[0])
    assert expected == "1235"
    assert fused.completion.startswith(expected) and fused.spans[0] == Span(0, 4, "sort")
    assert fused.conn_text()[0] == ("sort", "1235") and fused.text == "sort(5213)=" + fused.completion


def test_two_conns_with_two_triggers_in_one_completion(lm: BigramLM, library_conns: dict[str, FusedConn]):
    conns = [library_conns["sort"], library_conns["length"]]
    result = fuse_decode_one(lm, conns, "sort(312)=", max_new_chars=40)
    # sort answers, the LM writes " length(ab)=" on its own, length answers, the LM ends the line
    assert result.completion == "123 length(ab)=2"
    assert result.spans == (Span(0, 3, "sort"), Span(15, 16, "length"))
    assert result.fallbacks == () and result.stop == "end_of_text"
    assert lm.calls and all(size == 1 for size in lm.calls)


def test_out_of_vocab_operand_falls_back_to_the_lm_and_says_why(lm: BigramLM, library_conns: dict[str, FusedConn]):
    result = fuse_decode_one(lm, [library_conns["sort"]], "sort(3x2)=", max_new_chars=10)
    assert result.completion == "0" and result.spans == ()
    assert result.fallbacks == (Fallback(0, "sort", "operand '3x2': 'x' is not in the CoNN's vocab"),)


def test_too_long_operand_falls_back_to_the_lm_and_says_why(lm: BigramLM, library_conns: dict[str, FusedConn]):
    sort = library_conns["sort"]
    operand = "1" * (sort.max_seq_len + 1)
    result = fuse_decode_one(lm, [sort], f"sort({operand})=", max_new_chars=10)
    assert result.completion == "0" and result.spans == ()
    assert result.fallbacks == (
        Fallback(0, "sort", f"operand has {sort.max_seq_len + 1} tokens; sort is proven on at most {sort.max_seq_len}"),)
    longest = fuse_decode_one(lm, [sort], f"sort({operand[1:]})=", max_new_chars=40)
    assert longest.spans == (Span(0, sort.max_seq_len, "sort"),)


def test_a_trigger_with_no_operand_start_leaves_the_lm_alone(lm: BigramLM, library_conns: dict[str, FusedConn]):
    result = fuse_decode_one(lm, list(library_conns.values()), "x)=", max_new_chars=10)
    assert result.completion == "0" and result.spans == () and result.fallbacks == ()


def test_batched_decoding_matches_one_by_one_and_batches_the_lm(library_conns: dict[str, FusedConn]):
    conns = [library_conns["sort"], library_conns["length"], library_conns["reverse"]]
    prompts = ["sort(312)=", "x)=", "reverse(abc)=", "sort(3x2)=", "length(abcab)=", "sort(5)="]
    lm = BigramLM()
    batched = fuse_decode(lm, conns, prompts, max_new_chars=30)
    assert max(lm.calls) == len(prompts)  # one LM call for every running row at once
    assert batched == [fuse_decode_one(BigramLM(), conns, p, max_new_chars=30) for p in prompts]
    assert batched[2].conn_text()[0] == ("reverse", "cba")
    assert batched[4].conn_text()[0] == ("length", "5")  # broadcast output: one value written


def test_max_new_chars_caps_conn_text_too(lm: BigramLM, library_conns: dict[str, FusedConn]):
    result = fuse_decode_one(lm, [library_conns["sort"]], "sort(54321)=", max_new_chars=3)
    assert result.completion == "123" and result.spans == (Span(0, 3, "sort"),) and result.stop == "max_new_chars"


def test_the_same_conn_twice_or_clashing_specs_are_refused(lm: BigramLM, library_conns: dict[str, FusedConn]):
    sort = library_conns["sort"]
    with pytest.raises(ValueError, match="appears twice"):
        fuse_decode(lm, [sort, sort], ["x"], max_new_chars=1)
    twin = FusedConn("sort_twin", sort.spec, sort.runtime)
    with pytest.raises(ValueError, match="both use operand start"):
        fuse_decode(lm, [sort, twin], ["x"], max_new_chars=1)
