"""The demo LM: the committed weights load and work, retraining runs, and its training text is right."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from autoconn.conn.artifact import Library
from autoconn.fusion.demo_lm import (
    DEFAULT_DIR,
    DemoLM,
    DemoLMError,
    LMConfig,
    TrainSettings,
    corpus,
    load_demo_lm,
    save_demo_lm,
    stale_rules,
    train_demo_lm,
)
from autoconn.fusion.metadata import spec_of_meta
from autoconn.fusion.token_level import fuse_decode
from tests.fusion.conftest import LIBRARY

# Independent oracles for the rules the committed LM is trained on (the corpus takes its
# answers from the CoNNs; these check that those answers are the rules' answers).
ORACLES = {
    "parity": lambda tokens: str(sum(tokens) % 2),
    "reverse": lambda tokens: "".join(str(t) for t in reversed(tokens)),
}


@pytest.fixture(scope="module")
def shipped() -> DemoLM:
    return load_demo_lm(train_if_missing=False)


def test_shipped_weights_load_and_give_logits_of_the_right_shape(shipped: DemoLM) -> None:
    contexts = ["parity(0110)=", "", "reverse(ab", "x\nreverse(abc)=c"]
    logits = shipped.next_char_logits(contexts)
    assert logits.shape == (len(contexts), len(shipped.alphabet))
    assert np.isfinite(logits).all()
    assert shipped.end_of_text == "\n" and shipped.end_of_text in shipped.alphabet
    assert (DEFAULT_DIR / "weights.npz").stat().st_size < 3_000_000
    # The LM reads the current line only: earlier lines change nothing.
    np.testing.assert_allclose(shipped.next_char_logits(["reverse(abc)=c", "parity(1)=1\nreverse(abc)=c"])[1],
                               logits[3], rtol=1e-5, atol=1e-5)


def test_repeated_calls_reuse_one_compiled_forward_per_batch_size(shipped: DemoLM) -> None:
    shipped.next_char_logits(["parity(0"] * 3)
    compiled = shipped._last_logits
    assert compiled is not None
    before = compiled._cache_size()
    for size in (2, 5, 7):  # all in the 8-row bucket
        shipped.next_char_logits(["reverse(abc)="] * size)
    assert compiled._cache_size() == before


def test_unknown_character_is_refused_with_its_name(shipped: DemoLM) -> None:
    with pytest.raises(ValueError, match="'Z'"):
        shipped.next_char_logits(["reverse(aZ"])


@pytest.mark.slow
def test_greedy_completions_are_right_at_trained_lengths(shipped: DemoLM) -> None:
    """At least 90% exact on 20 random prompts per trained rule, operands of trained lengths."""
    settings = shipped.record["settings"]
    library = Library(LIBRARY)
    for rule in settings["rules"]:
        entry = library.get(rule)
        operands = corpus.sample_operands(list(entry.meta["vocab"]), settings["lengths"], 20, random.Random(123))
        examples = corpus.examples_for(entry, operands)
        results = fuse_decode(shipped, [], [e.prompt for e in examples], max_new_chars=20, use_conns=False)
        right = sum(r.stop == "end_of_text" and r.completion == e.answer for r, e in zip(results, examples))
        assert right >= 18, f"{rule}: {right}/20 right; e.g. {[(e.prompt, r.completion) for r, e in zip(results, examples)][:3]}"


@pytest.mark.slow
def test_corpus_stays_in_trained_lengths_and_answers_are_the_conns() -> None:
    library = Library(LIBRARY)
    examples = corpus.generate(["parity", "reverse"], (1, 2, 3, 4, 5, 6, 7, 8), 150, seed=7, library=library)
    assert {e.rule for e in examples} == {"parity", "reverse"} and len(examples) == 300
    assert all(1 <= len(e.operand) <= 8 for e in examples)
    for rule in ("parity", "reverse"):
        entry = library.get(rule)
        spec = spec_of_meta(rule, entry.meta)
        mine = [e for e in examples if e.rule == rule]
        outputs = entry.runtime().run([list(e.operand) for e in mine])
        for example, output in zip(mine, outputs):
            assert example.prompt == f"{rule}(" + "".join(str(t) for t in example.operand) + ")="
            assert example.answer == spec.render_output(output) == ORACLES[rule](list(example.operand))
            assert spec.parse_operand(example.prompt[len(spec.operand_start):-len(spec.trigger)]) == example.operand


def test_corpus_is_deterministic() -> None:
    library = Library(LIBRARY)
    first = corpus.generate(["reverse"], (1, 2, 3), 20, seed=3, library=library)
    assert first == corpus.generate(["reverse"], (1, 2, 3), 20, seed=3, library=library)


@pytest.mark.slow
def test_retraining_a_small_config_runs_saves_and_loads(tmp_path: Path) -> None:
    settings = TrainSettings(rules=("parity", "reverse"), lengths=(1, 2, 3), examples_per_rule=60, steps=4,
                             batch_size=4, seed=1, model=LMConfig(d_model=16, num_layers=1, num_heads=2, positions=24))
    lm = train_demo_lm(settings, library=Library(LIBRARY), show_progress=False, eval_per_length=2)
    assert lm.record["training"]["steps"] == 4 and np.isfinite(lm.record["training"]["final_loss"])
    save_demo_lm(lm, tmp_path)
    again = load_demo_lm(tmp_path, train_if_missing=False)
    prompts = ["parity(01)=", "reverse(abc)="]
    np.testing.assert_allclose(again.next_char_logits(prompts), lm.next_char_logits(prompts), rtol=1e-6)
    assert again.alphabet == lm.alphabet and again.max_context == 23


def test_damaged_weights_are_refused(tmp_path: Path) -> None:
    for name in ("weights.npz", "demo_lm.json"):
        shutil.copy(DEFAULT_DIR / name, tmp_path / name)
    record = json.loads((tmp_path / "demo_lm.json").read_text())
    (tmp_path / "demo_lm.json").write_text(json.dumps(dict(record, weights_sha256="0" * 64)))
    with pytest.raises(DemoLMError, match="sha256"):
        load_demo_lm(tmp_path)


def test_missing_weights_without_training_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(DemoLMError, match="python -m autoconn.fusion.demo_lm train"):
        load_demo_lm(tmp_path, train_if_missing=False)


def test_a_changed_text_format_marks_the_lm_stale(shipped: DemoLM, library_copy: Path) -> None:
    assert stale_rules(shipped, Library(LIBRARY)) == []
    meta_path = library_copy / "parity" / "conn.json"
    meta = json.loads(meta_path.read_text())
    spec = spec_of_meta("parity", meta).to_json()
    meta_path.write_text(json.dumps(dict(meta, fusion=dict(spec, operand_start="par("))))
    assert stale_rules(shipped, Library(library_copy)) == ["parity"]
