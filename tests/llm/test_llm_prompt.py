"""The LLM inducer's pure parts: code extraction, example choice, repair turns, demonstrations."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autoconn.inducers.base import Counterexample, Feedback
from autoconn.inducers.llm.extract import extract_program
from autoconn.inducers.llm.fewshot import choose_demonstrations, program_body
from autoconn.inducers.llm.inducer import LLMInducer, normalized
from autoconn.inducers.llm.prompt import conversation, pick_examples, repair_chain, repair_text
from autoconn.task import Example, load_task
from tests.conftest import FIXTURE_LIBRARY, REPO, write_jsonl

CODE = "from tracr.rasp import rasp\nprogram = rasp.Map(lambda t: t, rasp.tokens)\n"


@pytest.mark.parametrize("reply", [
    f"```python\n{CODE}```",
    f"Sure!\n```py\n{CODE}```\nThis maps each token to itself.",
    f"```\n{CODE}```",
    f"<think>maybe ```python\nprogram = 1\n```</think>\n```python\n{CODE}```",
    f"Here you go:\n{CODE}\nThat is all.",
    f"```python\n{CODE}",  # the reply was cut off before the closing fence
])
def test_extract_finds_the_program_in_any_reply_shape(reply: str):
    assert extract_program(reply) == CODE


def test_extract_prefers_the_block_that_binds_program_and_adds_a_missing_import():
    reply = "```python\nx = 1\n```\nand\n```python\nprogram = rasp.tokens\n```"
    assert extract_program(reply) == "from tracr.rasp import rasp\n\nprogram = rasp.tokens\n"


@pytest.mark.parametrize("reply", ["", "The rule is reversal.", "```text\nreverse it\n```", "```json\n{}\n```"])
def test_extract_returns_none_without_code(reply: str):
    assert extract_program(reply) is None


def test_pick_examples_covers_every_length_shortest_first():
    import itertools
    examples = [Example(tuple(w), (n,) * n) for n in (1, 2, 3) for w in itertools.islice(itertools.product("abc", repeat=n), 10)]
    chosen = pick_examples(examples, 7)
    assert len(chosen) == 7 and {len(e.inputs) for e in chosen} == {1, 2, 3}
    assert [len(e.inputs) for e in chosen] == sorted(len(e.inputs) for e in chosen)
    duplicates = [Example(tuple("a" * n), (n,) * n) for n in (1, 2, 3) for _ in range(10)]
    assert len(pick_examples(duplicates, 7)) == 3  # the same example twice teaches nothing


def failure(stage: str, n_counter: int = 0, source: str = "s") -> Feedback:
    ce = tuple(Counterexample(("a",), (1,), (2,)) for _ in range(n_counter))
    return Feedback(source=source, stage=stage, message=f"{stage} failed", counterexamples=ce)


def test_repair_chain_keeps_the_most_advanced_failure_of_each_round():
    feedback = [failure("compile", source="r1a"), failure("check", 3, "r1b"),
                failure("screen", source="r2a"), failure("check", 1, "r2b")]
    chain = repair_chain(feedback, round_size=2, turns=2)
    assert [f.source for f in chain] == ["r1b", "r2b"]
    assert [f.source for f in repair_chain(feedback, round_size=2, turns=1)] == ["r2b"]


def test_verify_feedback_never_carries_examples():
    text = repair_text(failure("verify", 3))
    assert "Counterexamples" not in text and "input [" not in text and "verify stage" in text
    assert "input ['a']: expected [1], your program gave [2]" in repair_text(failure("check", 1))


def test_normalized_ignores_comments_and_blank_lines():
    assert normalized(CODE) == normalized("# try\n" + CODE.replace("\n", "  # why\n\n"))


def test_settings_from_environment_with_flags_winning(monkeypatch: pytest.MonkeyPatch):
    for name, value in {"AUTOCONN_LLM_SAMPLES": "6", "AUTOCONN_LLM_TEMPERATURE": "0.3", "AUTOCONN_LLM_FEWSHOT": "1",
                        "AUTOCONN_MODEL": "env-model", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}.items():
        monkeypatch.setenv(name, value)
    inducer = LLMInducer.from_environment(model="flag-model", samples=None, temperature=1.1, library_dir="lib")
    settings = inducer.settings
    assert settings.samples == 6 and settings.temperature == 1.1 and settings.fewshot == 1 and settings.library_dir == "lib"
    assert inducer.endpoint.config.model == "flag-model" and inducer.endpoint.config.base_url == "http://127.0.0.1:9/v1"


def test_demonstrations_are_closest_library_programs_never_the_same_task(tmp_path: Path):
    library = tmp_path / "lib"
    shutil.copytree(FIXTURE_LIBRARY, library)
    parity_like = write_jsonl(tmp_path / "odd.jsonl", [{"description": "1 if the number of 1s is odd, at every position"}] + [
        {"input": [int(c) for c in w], "output": w.count("1") % 2} for w in ["0", "1", "01", "11", "110", "111", "0110", "1011"]])
    demos = choose_demonstrations(load_task(parity_like), library, 2)
    assert demos[0].name == "parity"  # int vocab, broadcast, categorical, shared words
    assert all(d.source.startswith("from tracr") or "import" in d.source for d in demos)
    assert all("Found by" not in d.source for d in demos) and demos[0].examples
    inputs, output = demos[0].examples[-1]
    assert output == sum(inputs) % 2  # computed by the CoNN's own weights
    same_task = choose_demonstrations(load_task(REPO / "rule_examples" / "parity.jsonl"), library, 10)
    assert "parity" not in [d.name for d in same_task]  # registered from this very file


def test_program_body_strips_only_the_library_header():
    text = '"""CoNN header."""\n\n"""Own docstring."""\nprogram = 1\n'
    assert program_body(text) == '"""Own docstring."""\nprogram = 1\n'


def test_conversation_replays_failures_as_turns():
    task = load_task(REPO / "rule_examples" / "count_a.jsonl")
    messages = conversation(task, task.examples[:5], [], [failure("check", 1, CODE)],
                            max_examples=40, round_size=1, repair_turns=2)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert CODE.strip() in messages[2]["content"] and "check stage" in messages[3]["content"]
