"""Task files: inference, the split, and one test per validation error (message, line, exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoconn.cli import app
from autoconn.task import Limits, SplitError, TaskError, load_task, split_task
from tests.conftest import reverse_rows

GOOD = [{"input": list("ab"), "output": list("ba")}, {"input": list("abc"), "output": list("cba")},
        {"input": list("b"), "output": list("b")}, {"input": list("ca"), "output": list("ac")}]


def test_infers_vocab_kinds_and_lengths(make_task):
    task = load_task(make_task(reverse_rows(4)))
    assert task.input_vocab == ("a", "b", "c")
    assert task.output_kind == "categorical" and task.output_shape == "sequence"
    assert (task.min_length, task.max_length, task.max_seq_len) == (1, 4, 8)
    assert task.name == "task"


def test_string_input_single_value_output_and_header(make_task):
    rows = [{"name": "parity", "description": "xor of the bits", "vocab": [0, 1]}]
    rows += [{"input": bits, "output": sum(bits) % 2} for bits in ([0], [1], [0, 1], [1, 1], [1, 0, 1])]
    task = load_task(make_task(rows))
    assert task.name == "parity" and task.description == "xor of the bits"
    assert task.output_shape == "broadcast" and task.output_vocab == (0, 1)
    assert task.examples[-1].outputs == (0, 0, 0)
    chars = load_task(make_task([{"input": "abc", "output": list("cba")}, {"input": "ab", "output": "x"},
                                 {"input": "a", "output": "a"}, {"input": "ba", "output": ["a", "b"]}], "s.jsonl"))
    assert chars.examples[0].inputs == ("a", "b", "c") and chars.examples[1].outputs == ("x", "x")


def test_a_string_output_as_long_as_a_string_input_is_ambiguous(make_task):
    """"cba" for input "abc" could be one value or one character per position: refused, with both spellings."""
    with pytest.raises(TaskError, match=r'"output" is the string \'cba\'.*\n.*\["c", "b", "a"\].*\["cba", "cba", "cba"\]'):
        load_task(make_task([{"input": "abc", "output": "cba"}, {"input": "ab", "output": ["b", "a"]}]))


def test_fractional_outputs_are_numerical(make_task):
    rows = [{"input": ["x", "y"], "output": [1.0, 0.5]}, {"input": ["y"], "output": [0]},
            {"input": ["x"], "output": [1]}, {"input": ["y", "x"], "output": [0, 0.5]}]
    task = load_task(make_task(rows))
    assert task.output_kind == "numerical" and task.output_vocab == ()


def test_flags_override_header(make_task):
    rows = [{"name": "n", "max_seq_len": 6}] + GOOD
    assert load_task(make_task(rows)).max_seq_len == 6
    assert load_task(make_task(rows), max_seq_len=12, name="other").max_seq_len == 12
    with pytest.raises(TaskError, match="shorter than the longest example"):
        load_task(make_task(rows), max_seq_len=2)


def test_duplicate_lines_with_same_output_collapse(make_task):
    assert len(load_task(make_task(GOOD + GOOD[:1])).examples) == 4


def test_split_is_deterministic_and_holds_out_longest(make_task):
    rows = reverse_rows(5)
    task = load_task(make_task(rows))
    first, second = split_task(task), split_task(load_task(make_task(list(reversed(rows)), "r.jsonl")))
    for part in ("induction", "validation", "sealed"):
        assert {e.inputs for e in getattr(first, part)} == {e.inputs for e in getattr(second, part)}
    # the longest length goes to validation and sealed both, never to induction
    assert max(len(e.inputs) for e in first.sealed) == 5 and max(len(e.inputs) for e in first.validation) == 5
    assert max(len(e.inputs) for e in first.induction) < 5
    assert len(first.induction) >= len(task.examples) // 2
    sets = [{e.inputs for e in getattr(first, part)} for part in ("induction", "validation", "sealed")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(map(len, sets)) == len(task.examples)


def test_a_file_too_small_for_three_sets_says_how_many_to_add(make_task):
    task = load_task(make_task(GOOD[:4] + [{"input": list("cc"), "output": list("cc")}]))
    with pytest.raises(SplitError,
                       match=r"holds 5 distinct example\(s\).*need at least 8(.|\n)*add 3 more.*--oracle.*--no-sealed"):
        split_task(task)
    without = split_task(task, sealed=False)  # --no-sealed, or an oracle gives the verdict
    assert not without.sealed and without.validation and without.induction


def test_split_single_length_still_holds_out(make_task):
    task = load_task(make_task(GOOD[:2] + [{"input": list("cc"), "output": list("cc")},
                                            {"input": list("bb"), "output": list("bb")},
                                            {"input": list("ba"), "output": list("ab")}]))
    split = split_task(task, sealed=False)
    assert split.validation and len(split.induction) >= 2
    rows = [{"input": [a, b], "output": [b, a]} for a in "abc" for b in "abc"]
    three = split_task(load_task(make_task(rows, "one_length.jsonl")))
    assert three.sealed and three.validation and len(three.induction) >= len(rows) // 2


BAD_CASES = [
    ("not_json", [GOOD[0], "{\"input\": [\"a\"], \"output\": ", *GOOD[1:]], 2, "not valid JSON"),
    ("not_object", [GOOD[0], "[1, 2]", *GOOD[1:]], 2, "expected a JSON object"),
    ("missing_input", [*GOOD, {"output": ["a"]}], 5, "missing \"input\""),
    ("missing_input_first_line", [{"output": ["a"]}, *GOOD], 1, "missing \"input\""),
    ("missing_input_after_first", [*GOOD, {"name": "late header"}], 5, "missing \"input\""),
    ("missing_output", [*GOOD, {"input": ["a"]}], 5, "missing \"output\""),
    ("length_mismatch", [*GOOD, {"input": ["a", "b"], "output": ["a"]}], 5, "has 1 values but \"input\" has 2 tokens"),
    ("empty_input", [*GOOD, {"input": [], "output": []}], 5, "\"input\" is empty"),
    ("bos_token", [*GOOD, {"input": ["a", "BOS"], "output": ["a", "a"]}], 5, "reserved for the compiler's BOS"),
    ("pad_token", [*GOOD, {"input": ["PAD"], "output": ["a"]}], 5, "reserved for the compiler's PAD"),
    ("list_token", [*GOOD, {"input": [["a"], "b"], "output": ["a", "b"]}], 5, "contains a list"),
    ("dict_token", [*GOOD, {"input": [{"a": 1}], "output": ["a"]}], 5, "contains a dict"),
    ("conflict", [*GOOD, {"input": ["a", "b"], "output": ["a", "b"]}], 5, "same input as line 1 has a different output"),
    ("too_few", GOOD[:1], None, "only 1 distinct example(s); at least 2"),
    ("empty_file", [], None, "holds no examples"),
    ("bool_int_mix", [*GOOD[:3], {"input": [True, 1], "output": ["a", "b"]}], 4, "mixes booleans and integers"),
    ("vocab_violation", [{"vocab": ["a", "b"]}, *GOOD], 3, "not in the declared vocab"),
    ("header_vocab_bool_int", [{"vocab": [True, 1]}, *[{"input": [1] * n, "output": [1] * n} for n in (1, 2, 3)]],
     1, "mixes booleans and integers"),
    ("int_40_digits", [*GOOD, {"input": [10 ** 39], "output": ["a"]}], 5, "integers must be below 2**31"),
    ("int_5000_digits", [*GOOD, '{"input": [' + "9" * 5000 + '], "output": ["a"]}'], 5, "cannot be read"),
    ("nested_deep", [*GOOD, '{"input": ' + "[" * 40_000 + "]" * 40_000 + ', "output": 1}'], 5, "lists deep"),
    ("objects_deep", [*GOOD, '{"input": ["a"], "output": ' + '{"a": ' * 12_000 + "1" + "}" * 12_000 + "}"],
     5, "nested too deeply"),
    ("ambiguous_string_output", [*GOOD, {"input": "abc", "output": "cba"}], 5, "as long as the input string"),
]


@pytest.mark.parametrize("case,rows,line,message", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_task_file_error_names_file_and_line(make_task, case, rows, line, message):
    path = make_task(rows, f"{case}.jsonl")
    with pytest.raises(TaskError) as info:
        load_task(path)
    assert message in str(info.value)
    assert info.value.line == line
    assert str(path) in str(info.value)


@pytest.mark.parametrize("case,rows,line,message", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_task_file_exits_2_and_writes_nothing(tmp_path: Path, make_task, case, rows, line, message):
    path = make_task(rows, f"{case}.jsonl")
    program = tmp_path / "program.py"
    program.write_text("from tracr.rasp import rasp\nprogram = rasp.Map(lambda x: x, rasp.tokens)\n")
    library = tmp_path / "lib"
    result = CliRunner().invoke(app, ["check", str(program), str(path), "--register", "x", "--out", str(library)])
    assert result.exit_code == 2, result.output
    where = f"{path}:{line}" if line else str(path)
    assert where in result.output.replace("\n", "")
    assert message.split("(")[0] in result.output.replace("\n", " ")
    assert not library.exists()


def test_missing_task_file_exits_2(tmp_path: Path):
    result = CliRunner().invoke(app, ["check", str(tmp_path / "p.py"), str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_u2028_inside_a_token_is_part_of_the_token(make_task):
    """JSON Lines ends lines at \\n only; a raw U+2028 (valid inside a JSON string) is a character."""
    odd = "a\u2028b"
    path = make_task([])
    path.write_text("".join(json.dumps({"input": [odd, "c"], "output": ["c", odd]}, ensure_ascii=False) + "\n"
                            for _ in range(1)) + "\n".join(json.dumps(r) for r in GOOD) + "\n", encoding="utf-8")
    assert "\u2028" in path.read_text(encoding="utf-8")
    task = load_task(path)
    assert task.examples[0].inputs == (odd, "c") and odd in task.input_vocab


@pytest.mark.parametrize("limit,rows,message", [
    (["examples=5"], GOOD * 1 + [{"input": list(w), "output": list(w)[::-1]} for w in ("aa", "bb", "cc")],
     "more than 5 examples"),
    (["max-seq-len=4"], GOOD, "max_seq_len 6 is over the limit of 4"),
    (["output-values=2"], GOOD, "distinct output values, over the limit of 2"),
    (["line-bytes=20"], GOOD, "bytes, over the limit of 20"),
])
def test_task_size_limits_exit_2_before_any_work_and_say_which_flag_raises_them(tmp_path: Path, make_task, limit, rows, message):
    path = make_task(rows)
    program = tmp_path / "program.py"
    program.write_text("from tracr.rasp import rasp\nprogram = rasp.Map(lambda x: x, rasp.tokens)\n")
    result = CliRunner().invoke(app, ["induce", str(path), "--limit", limit[0], "--out", str(tmp_path / "lib"),
                                      "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and message in result.output.replace("\n", " ")
    assert "--limit" in result.output and not (tmp_path / "runs").exists()


def test_default_limits_stop_a_huge_line_and_too_many_examples_fast(tmp_path: Path, make_task):
    import time

    huge = make_task([{"input": ["a"] * 10_000_000, "output": 1}, *GOOD], "huge.jsonl")
    started = time.monotonic()
    with pytest.raises(TaskError, match="over the limit of 100,000"):
        load_task(huge)
    many = make_task([{"input": [f"t{i}"], "output": [i % 7]} for i in range(10_000)], "many.jsonl")
    with pytest.raises(TaskError, match="more than 2,000 examples"):
        load_task(many)
    assert time.monotonic() - started < 30
    raised = load_task(many, limits=Limits.parse(["examples=20000"]))
    assert len(raised.examples) == 10_000


def test_a_bad_limit_flag_is_a_usage_error(tmp_path: Path, make_task):
    result = CliRunner().invoke(app, ["induce", str(make_task(GOOD)), "--limit", "lines=3"])
    assert (result.exit_code == 2
            and "use NAME=N with NAME one of line-bytes, examples, output-values, max-seq-len" in result.output)


def test_fractional_tokens_are_categorical_values(make_task):
    """To tracr a token is any hashable value: 0.5 is a token like "a" (a whole 2.0 is the int 2)."""
    rows = [{"input": [0.5, 2.0], "output": [1, 0]}, {"input": [0.25], "output": [1]}, {"input": [2, 0.5], "output": [0, 1]}]
    task = load_task(make_task(rows))
    assert task.input_vocab == (0.25, 0.5, 2) and task.examples[0].inputs == (0.5, 2)
    with pytest.raises(TaskError, match="must be finite"):
        load_task(make_task([*rows, '{"input": [Infinity], "output": [0]}'], "inf.jsonl"))
