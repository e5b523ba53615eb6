"""Issue 15: the LLM loop gives a model what it needs. Every test runs against the real local
OpenAI-compatible server (tests/support/openai_server.py) and asserts on what it *received*:
demonstrations chosen by behaviour and shown inside their proven domain, feedback that names
the broken primer rule (from the lint, without a sandbox round trip, or from the compiler's
own text), type slips told apart from wrong rules, the whole repair history, examples that
cover every length, validation counterexamples shown and sealed ones never, the primer's
lib helpers explained, and --max-tokens / the temperature default sent and recorded.

Tests calling ``LLMInducer.propose`` directly build the feedback the pipeline would hand back
(plain data); the end-to-end ones run ``autoconn induce`` with the process sandbox.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from autoconn.conn.artifact import Library
from autoconn.endpoint import ChatEndpoint, EndpointConfig
from autoconn.inducers.base import Counterexample, Feedback
from autoconn.inducers.llm import LLMInducer, LLMSettings
from autoconn.inducers.llm.prompt import show_sequence
from autoconn.settings import Secret
from autoconn.task import load_task, split_task
from tests.conftest import write_jsonl
from tests.llm.library_builder import build_library, register_reference
from tests.llm.test_llm_induce import fenced, induce
from tests.support.openai_server import OpenAIServer, Reply, scripted

pytestmark = pytest.mark.slow

NO_CODE = "I am not sure what the rule is."
RNG_SEED = 15


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture library plus compiled reference CoNNs (a balanced-prefix one, a numerical one)."""
    return build_library(tmp_path_factory.mktemp("guidance") / "lib")


def words(vocab: list[Any], lengths: range, count: int, seed: int = RNG_SEED) -> list[list[Any]]:
    rng = random.Random(seed)
    return [[rng.choice(vocab) for _ in range(rng.choice(lengths))] for _ in range(count)]


def inducer_for(server: OpenAIServer, library: Path, **settings: Any) -> LLMInducer:
    config = EndpointConfig(model="test-model", base_url=server.base_url, api_key=Secret("sk-test"),
                            max_retries=0, timeout_seconds=30)
    return LLMInducer(ChatEndpoint(config), LLMSettings(library_dir=str(library), **({"samples": 1} | settings)))


def first_user(server: OpenAIServer, index: int = 0) -> str:
    return server.chat_requests()[index]["messages"][1]["content"]


def demo_blocks(user: str) -> dict[str, str]:
    """Each '# Verified example: NAME' block of a first request, by name."""
    parts = re.split(r"^# Verified example: (\S+)\n", user, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].split("\n# Task:")[0] for i in range(1, len(parts), 2)}


def demo_inputs(block: str) -> list[list[Any]]:
    section = block.split("Examples (input -> output", 1)[1].split("```", 1)[0]
    return [json.loads(line.split(" -> ")[0].replace("'", '"').replace("True", "true").replace("False", "false"))
            for line in section.splitlines() if " -> " in line]


def propose_once(server: OpenAIServer, library: Path, task_path: Path, feedback: list[Feedback] = (),
                 **settings: Any) -> LLMInducer:
    task = load_task(task_path)
    split = split_task(task)
    inducer = inducer_for(server, library, **settings)
    inducer.propose(task, list(split.induction), list(feedback), budget_seconds=60, limit=5)
    return inducer


# -- 1. demonstrations chosen by behaviour -----------------------------------------------

def test_a_reverse_like_task_is_shown_reverse(tmp_path: Path, library: Path):
    rows = [{"name": "reverse_inc_mod10", "description": "Add one to each digit, mod 10, and list them back to front."}]
    rows += [{"input": w, "output": [(x + 1) % 10 for x in reversed(w)]} for w in words(list(range(10)), range(1, 7), 40)]
    task = write_jsonl(tmp_path / "reverse_inc_mod10.jsonl", rows)
    with OpenAIServer(scripted(Reply.text(NO_CODE))) as server:
        propose_once(server, library, task)
    blocks = demo_blocks(first_user(server))
    assert list(blocks)[0] == "reverse"  # before: sort / sort_unique / hist (surface features)
    assert "after relabeling each value consistently" in blocks["reverse"]  # says why it was chosen


def test_a_mirror_task_is_shown_reverse_and_a_dyck_task_the_prefix_conn(tmp_path: Path, library: Path):
    mirror = [{"name": "mirror_equal", "description": "True where a token equals its mirror image."}]
    mirror += [{"input": w, "output": [a == b for a, b in zip(w, reversed(w))]} for w in words(list("abc"), range(1, 7), 40)]
    brackets = [{"name": "nested", "description": "Is the whole string well nested?"}]
    for w in words(list("[]"), range(1, 9), 60):
        depth = [sum(1 if c == "[" else -1 for c in w[:i + 1]) for i in range(len(w))]
        brackets.append({"input": w, "output": min(depth) >= 0 and depth[-1] == 0})
    with OpenAIServer(scripted(Reply.text(NO_CODE))) as server:
        propose_once(server, library, write_jsonl(tmp_path / "mirror.jsonl", mirror))
        propose_once(server, library, write_jsonl(tmp_path / "nested.jsonl", brackets))
        requests = server.chat_requests()
    mirror_demos = list(demo_blocks(requests[0]["messages"][1]["content"]))
    dyck_demos = list(demo_blocks(requests[-1]["messages"][1]["content"]))
    assert mirror_demos[0] == "reverse"  # before: equals_prev / hist
    assert dyck_demos[0] == "dyck1_prefix"  # before: hist / mirror_equal, with dyck1_prefix in the library


def test_a_numerical_task_gets_a_numerical_demonstration(tmp_path: Path, library: Path):
    rows = [{"name": "mean_of_indices_parity", "description": "Numerical: running share of positions holding q."}]
    for w in words(list("pq"), range(1, 7), 30):
        rows.append({"input": w, "output": [round(w[:i + 1].count("q") / (i + 1), 4) + 0.0 for i in range(len(w))]})
    rows.append({"input": ["p", "q", "q"], "output": [0.0, 0.5, 0.6667]})
    with OpenAIServer(scripted(Reply.text(NO_CODE))) as server:
        propose_once(server, library, write_jsonl(tmp_path / "share_q.jsonl", rows))
    blocks = demo_blocks(first_user(server))
    assert "frac_prevs" in blocks and "a number (numerical" in blocks["frac_prevs"]


# -- 2. demonstrations inside their proven domain -----------------------------------------

def test_demonstrations_show_only_inputs_the_conn_is_proven_and_right_on(tmp_path: Path):
    library = build_library(tmp_path / "lib", extra=())
    register_reference(library, "dyck1_prefix", verified_max_length=4)  # proven only up to 4 tokens
    rows = [{"name": "sorted_distinct", "description": "Sort the distinct digits ascending."}]
    rows += [{"input": w, "output": sorted(w)} for w in (random.Random(s).sample(range(10), s % 6 + 1) for s in range(30))]
    brackets = [{"name": "prefix_ok", "description": "At each position, is the prefix balanced?"}]
    for w in words(list("()"), range(1, 9), 40):
        depth = [sum(1 if c == "(" else -1 for c in w[:i + 1]) for i in range(len(w))]
        brackets.append({"input": w, "output": [d == 0 and min(depth[:i + 1]) >= 0 for i, d in enumerate(depth)]})
    with OpenAIServer(scripted(Reply.text(NO_CODE))) as server:
        propose_once(server, library, write_jsonl(tmp_path / "sorted_distinct.jsonl", rows), fewshot=8)
        propose_once(server, library, write_jsonl(tmp_path / "prefix_ok.jsonl", brackets), fewshot=8)
        requests = server.chat_requests()
    sort_unique = demo_blocks(requests[0]["messages"][1]["content"])["sort_unique"]
    shown = demo_inputs(sort_unique)
    assert len(shown) >= 2 and all(len(set(i)) == len(i) for i in shown)  # never [7, 0, 7] -> [0, 7, 7]
    proven = Library(library).get("sort_unique").verified_length  # its oracle proved it to 10: no more distinct digits
    assert f"proven on inputs of 1 to {proven} tokens" in sort_unique
    prefix = demo_blocks(requests[-1]["messages"][1]["content"])["dyck1_prefix"]
    assert "proven on inputs of 1 to 4 tokens" in prefix
    assert demo_inputs(prefix) and max(len(i) for i in demo_inputs(prefix)) <= 4


# -- 3. feedback that names the rule --------------------------------------------------------

USES_LENGTH = """from tracr.rasp import rasp
opp = rasp.SequenceMap(lambda n, i: n - 1 - i, rasp.length, rasp.indices)
program = rasp.Aggregate(rasp.Select(rasp.indices, opp, rasp.Comparison.EQ), rasp.tokens)
"""
RIGHT_LENGTH = """from tracr.rasp import rasp
program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
"""
NUMERICAL_KEYS_HIDDEN = """from tracr.rasp import rasp
def as_number(sop):
    return rasp.numerical(sop)
ones = as_number(rasp.Map(lambda t: 1, rasp.tokens))
program = rasp.SelectorWidth(rasp.Select(ones, ones, rasp.Comparison.TRUE))
"""
SELECTS_SEVERAL = """from tracr.rasp import rasp
program = rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ), rasp.tokens)
"""
WRONG_BY_ONE = """from tracr.rasp import rasp
length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE))
program = rasp.Map(lambda n: n + 1, length).named("off_by_one")
"""
AS_BOOL = """from tracr.rasp import rasp
program = rasp.Map(lambda t: t == "b", rasp.tokens).named("is_b")
"""
AS_INT = """from tracr.rasp import rasp
program = rasp.Map(lambda t: 1 if t == "b" else 0, rasp.tokens).named("is_b")
"""


@pytest.fixture
def length_task(tmp_path: Path) -> Path:
    from tests.pipeline.test_induce import LENGTH_TASK
    return write_jsonl(tmp_path / "length.jsonl", LENGTH_TASK)


def test_a_rasp_length_mistake_is_named_by_the_lint_without_a_sandbox_round(tmp_path: Path, length_task: Path):
    with OpenAIServer(scripted(Reply.text(fenced(USES_LENGTH)), Reply.text(fenced(RIGHT_LENGTH)))) as server:
        result, summary = induce(server, length_task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    first, repair = server.chat_requests()
    turn = repair["messages"][-1]["content"]
    assert repair["messages"][-2]["content"] == f"```python\n{USES_LENGTH.strip()}\n```"
    assert "lint stage" in turn and "rule 12" in turn and "rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens" in turn
    assert summary["attempts"] == 1  # the flawed candidate never reached the sandbox
    assert summary["inducer_usage"]["llm"]["lint_rejected"] == 1 and summary["inducer_usage"]["llm"]["rounds"] == 1


def test_compile_and_evaluate_errors_are_named_by_rule_with_where(tmp_path: Path, length_task: Path):
    with OpenAIServer(scripted(Reply.text(fenced(NUMERICAL_KEYS_HIDDEN)), Reply.text(fenced(SELECTS_SEVERAL)),
                               Reply.text(fenced(RIGHT_LENGTH)))) as server:
        result, summary = induce(server, length_task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    second, third = (r["messages"][-1]["content"] for r in server.chat_requests()[1:])
    # The compiler's own words, its rule number and the one-line fix for that rule.
    assert "compile stage (primer rule 1)" in second and "Select keys must be categorical" in second
    assert "Rule 1: Select keys and queries must be categorical" in second
    # A categorical Aggregate selecting several positions: which Aggregate, where, on which input.
    assert "evaluate stage (primer rule 2)" in third
    assert re.search(r"selects 2 positions \[0, 1\] .* for query position 1 of input \[", third)


def test_compiler_error_text_loses_object_addresses_and_names_the_rule(tmp_path: Path, library: Path, length_task: Path):
    composite = Feedback(source=SELECTS_SEVERAL, stage="compile", message=(
        "TypeError: Compiling composite Selectors is not supported. "
        "Got a <tracr.rasp.rasp.SelectorOr object at 0x7f62a1b2c3d0>."))
    numerical_map = Feedback(source=WRONG_BY_ONE, stage="compile", message=(
        "NotImplementedError: Unsupported RASP expressions: sequence_map: (Non-linear) SequenceMap only supports "
        "categorical inputs/outputs."))
    with OpenAIServer(scripted(Reply.text(NO_CODE))) as server:
        propose_once(server, library, length_task, [composite, numerical_map], samples=1)
    messages = server.chat_requests()[0]["messages"]
    first_repair, last_repair = messages[3]["content"], messages[-1]["content"]
    assert "0x7f62" not in first_repair and "Got a SelectorOr." in first_repair and "primer rule 6" in first_repair
    assert "primer rule 5" in last_repair and "LinearSequenceMap" in last_repair


# -- 4. a type slip is not a wrong rule -----------------------------------------------------

def test_right_values_of_the_wrong_type_are_reported_as_a_type_slip(tmp_path: Path):
    rows = [{"name": "is_b", "description": "1 where the token is b, else 0"}]
    rows += [{"input": list(w), "output": [1 if c == "b" else 0 for c in w]}
             for w in ["a", "b", "ab", "ba", "bb", "aab", "bab", "abba", "baab", "abab", "bbbab", "aabab"]]
    task = write_jsonl(tmp_path / "is_b.jsonl", rows)
    with OpenAIServer(scripted(Reply.text(fenced(AS_BOOL)), Reply.text(fenced(AS_INT)))) as server:
        result, summary = induce(server, task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    turn = server.chat_requests()[1]["messages"][-1]["content"]
    assert "values are right but their type is wrong (bool instead of int)" in turn
    assert "rule 10" in turn and "1 if condition else 0" in turn
    assert "find the rule that explains every example" not in turn  # before: a logic error


# -- 5. the whole history -----------------------------------------------------------------

def test_the_fourth_round_still_lists_the_first_error(tmp_path: Path, length_task: Path):
    wrong_two = WRONG_BY_ONE.replace("n + 1", "n + 2").replace("off_by_one", "off_by_two")
    wrong_three = WRONG_BY_ONE.replace("n + 1", "2 * n").replace("off_by_one", "doubled")
    replies = [NUMERICAL_KEYS_HIDDEN, WRONG_BY_ONE, wrong_two, wrong_three, RIGHT_LENGTH]
    with OpenAIServer(scripted(*(Reply.text(fenced(r)) for r in replies))) as server:
        result, summary = induce(server, length_task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    requests = server.chat_requests()
    assert len(requests) == 5
    fourth = requests[3]["messages"]
    last = fourth[-1]["content"]
    assert "Every attempt so far" in last
    history = last.split("Every attempt so far", 1)[1]
    assert "1. compile: NotImplementedError: Unsupported RASP expressions: select: Select keys must be categorical" in history
    assert "-> rule 1" in history and "2. check:" in history and "3. check:" in history
    # The last two rounds keep their code (and counterexamples) in full; earlier ones one line each.
    codes = [m["content"] for m in fourth if m["role"] == "assistant"]
    assert codes == [f"```python\n{WRONG_BY_ONE.strip()}\n```", f"```python\n{wrong_two.strip()}\n```"]
    assert "Counterexamples:" in fourth[-3]["content"] and "Counterexamples:" in last


# -- 6. examples that cover the lengths -----------------------------------------------------

def test_examples_cover_every_induction_length_without_duplicates(tmp_path: Path, library: Path):
    rows = [{"name": "count_b", "description": "number of b tokens"}]
    rows += [{"input": ["a"], "output": 0}] * 6 + [{"input": ["b"], "output": 1}] * 6
    rows += [{"input": w, "output": w.count("b")} for w in words(list("ab"), range(2, 11), 70)]
    path = write_jsonl(tmp_path / "count_b.jsonl", rows)
    task = load_task(path)
    induction = split_task(task).induction
    with OpenAIServer(scripted(Reply.text(NO_CODE))) as server:
        propose_once(server, library, path, max_examples=20)
    user = first_user(server)
    section = user.split("# Task: count_b", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("[") and " -> " in line]
    shown_lengths = {len(json.loads(line.split(" -> ")[0].replace("'", '"'))) for line in lines}
    assert shown_lengths == {len(e.inputs) for e in induction}  # the longest included
    assert len(lines) == len(set(lines)) <= 20  # each example once


# -- validation counterexamples shown, held-out (verify) and sealed never --------------------

def test_validation_counterexamples_are_shown_and_heldout_ones_are_not(tmp_path: Path, library: Path, length_task: Path):
    validation = Feedback(source=WRONG_BY_ONE, stage="validate",
                          message="right on the induction examples, wrong on 2 of 6 validation examples",
                          counterexamples=(Counterexample(("a", "b", "b", "a", "b", "a", "b", "b", "a"), (9,) * 9, (10,) * 9),))
    heldout = Feedback(source=WRONG_BY_ONE.replace("n + 1", "n + 3"), stage="verify", message="wrong on 3 of 8 held-out examples",
                       counterexamples=(Counterexample(("b",) * 9, (9,) * 9, (12,) * 9),))
    oracle = Feedback(source=WRONG_BY_ONE.replace("n + 1", "n + 4"), stage="oracle", message="the oracle disagrees on 1 input",
                      counterexamples=(Counterexample(("a",) * 11, (11,) * 11, (15,) * 11),))
    with OpenAIServer(scripted(Reply.text(NO_CODE))) as server:
        propose_once(server, library, length_task, [validation, heldout, oracle], samples=1, repair_turns=3)
    text = "\n".join(m["content"] for m in server.chat_requests()[0]["messages"])
    assert "input ['a', 'b', 'b', 'a', 'b', 'a', 'b', 'b', 'a']: expected 9, your program gave 10" in text  # validation: shown
    assert "validation examples, not among those shown above" in text
    assert "input ['a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a']: expected" in text  # oracle: shown
    assert show_sequence(("b",) * 9) not in text  # held-out (verify): never


def test_sealed_examples_never_reach_the_model(tmp_path: Path, length_task: Path):
    """After the trustworthy-verification change the split has a sealed set; before it, the
    held-out set plays that part. Either way none of its inputs is ever sent."""
    with OpenAIServer(scripted(Reply.text(fenced(WRONG_BY_ONE)), Reply.text(fenced(RIGHT_LENGTH)))) as server:
        result, _ = induce(server, length_task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    split = split_task(load_task(length_task))
    sealed = getattr(split, "sealed", None) or split.heldout
    sent = "\n".join(m["content"] for body in server.chat_requests() for m in body["messages"])
    for example in sealed:
        assert f"{show_sequence(example.inputs)} ->" not in sent and f"input {show_sequence(example.inputs)}:" not in sent


# -- 7. the primer says what lib helpers compute --------------------------------------------

def test_primer_explains_lib_helpers_and_the_task_gives_make_sort_its_max_seq_len(
        tmp_path: Path, library: Path, length_task: Path):
    with OpenAIServer(scripted(Reply.text(NO_CODE))) as server:
        propose_once(server, library, length_task)
    request = server.chat_requests()[0]
    system, user = request["messages"][0]["content"], request["messages"][1]["content"]
    assert "`lib.shift_by(k, sop)`: at position i the value of `sop` at position i-k" in system
    assert "MUST be the compiled maximum length" in system and "`lib.make_hist()`: at each position, how many" in system
    max_seq_len = load_task(length_task).max_seq_len
    assert f"pass `max_seq_len={max_seq_len}` to `lib.make_sort`" in user


def test_make_sort_with_a_short_max_seq_len_is_stopped_by_the_lint(tmp_path: Path, length_task: Path):
    short_sort = """from tracr.rasp import rasp
from tracr.compiler import lib
length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE))
program = lib.make_sort(length, length, max_seq_len=4, min_key=1)
"""
    with OpenAIServer(scripted(Reply.text(fenced(short_sort)), Reply.text(fenced(RIGHT_LENGTH)))) as server:
        result, summary = induce(server, length_task, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    turn = server.chat_requests()[1]["messages"][-1]["content"]
    assert "max_seq_len=4 but inputs go up to" in turn and "(rule 11)" in turn


# -- 8. max_tokens and the temperature default, sent and recorded ---------------------------

def test_max_tokens_and_temperature_are_sent_and_recorded(tmp_path: Path, length_task: Path):
    with OpenAIServer(scripted(Reply.text(fenced(RIGHT_LENGTH)))) as server:
        result, summary = induce(server, length_task, tmp_path, "--max-tokens", "1234")
        env_result, env_summary = induce(server, length_task, tmp_path, "--samples", "4", "--name", "length_env",
                                         env={"AUTOCONN_LLM_MAX_TOKENS": "777"})
    assert result.returncode == 0 and env_result.returncode == 0, result.stderr + env_result.stderr
    first, second = server.chat_requests()[0], server.chat_requests()[1]
    assert first["max_tokens"] == 1234 and first["temperature"] == 0.2  # one sample: near-greedy
    assert second["max_tokens"] == 777 and second["temperature"] == 0.8 and second["n"] == 4
    settings = summary["inducer_usage"]["llm"]["settings"]
    assert (settings["max_tokens"] == 1234 and settings["temperature"] == 0.2
            and settings["temperature_source"] == "default for samples")
    assert env_summary["inducer_usage"]["llm"]["settings"]["max_tokens"] == 777
    saved = json.loads(next((tmp_path / "runs" / summary["run_id"] / "llm").glob("*.json")).read_text())
    assert saved[0]["request"] == {"n": 1, "temperature": 0.2, "max_tokens": 1234}
