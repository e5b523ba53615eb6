"""A tiny character-level LM for the Neural Comprehension demo, trained here on the CPU.

It is trained on lines such as ``parity(0110)=0`` and ``reverse(abcd)=dcba`` with operands
of a few lengths only (1-8 by default), in the text format the library's fusion specs
define, so the fusion benchmark (benchmarks/fusion.py) can measure the paper's claim: alone,
an LM is right at the lengths it was trained on and falls off beyond them; fused with the
CoNNs it stays exact.

``load_demo_lm()`` loads the committed weights (``weights.npz`` + ``demo_lm.json`` beside
this file), or trains and caches them when they are missing.
``python -m autoconn.fusion.demo_lm train`` retrains and rewrites them.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autoconn.conn.artifact import Library
from autoconn.fusion.demo_lm import corpus
from autoconn.fusion.demo_lm.model import BOS_ID, FIRST_CHAR_ID, PAD_ID, LMConfig, count_parameters, make_last_logits, unflatten
from autoconn.fusion.demo_lm.train import TrainResult, TrainSettings, train
from autoconn.fusion.metadata import spec_of_meta

__all__ = ["DemoLM", "DemoLMError", "TrainSettings", "LMConfig", "load_demo_lm", "train_demo_lm", "save_demo_lm",
           "build_corpus", "evaluate", "stale_rules", "corpus", "DEFAULT_DIR"]

DEFAULT_DIR = Path(__file__).resolve().parent
WEIGHTS_FILE = "weights.npz"
META_FILE = "demo_lm.json"
END_OF_TEXT = "\n"
BATCH_BUCKETS = (1, 8, 64, 512)
FORMAT_VERSION = 1
DEFAULT_SETTINGS = TrainSettings()  # frozen: one shared default is safe


class DemoLMError(RuntimeError):
    """The stored demo LM cannot be used as is (damaged, or does not match its record)."""


class DemoLM:
    """The trained network behind the CharLM protocol (autoconn.fusion.lm).

    It reads only the current line (the text after the last end_of_text), which is all a
    demo line depends on; contexts are padded to a fixed width and batches to fixed
    sizes, so repeated calls reuse one compiled forward per batch size."""

    def __init__(self, config: LMConfig, alphabet: Sequence[str], params: dict[str, np.ndarray],
                 end_of_text: str = END_OF_TEXT, record: dict[str, Any] | None = None) -> None:
        if end_of_text not in alphabet:
            raise DemoLMError(f"end_of_text {end_of_text!r} is not in the alphabet")
        self.config = config
        self.alphabet: tuple[str, ...] = tuple(alphabet)
        self.end_of_text = end_of_text
        self.max_context = config.positions - 1
        self.params = params
        self.record = record or {}
        self._index = {ch: i + FIRST_CHAR_ID for i, ch in enumerate(self.alphabet)}
        self._last_logits: Callable[[Any, Any], Any] | None = None

    @property
    def parameters(self) -> int:
        return count_parameters(self.params)

    def encode(self, contexts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids ``[N, positions]`` (BOS, the current line's last max_context characters,
        PAD) and each row's last real position."""
        tokens = np.full((len(contexts), self.config.positions), PAD_ID, dtype=np.int32)
        tokens[:, 0] = BOS_ID
        last = np.zeros(len(contexts), dtype=np.int32)
        for row, context in enumerate(contexts):
            line = context.rsplit(self.end_of_text, 1)[-1][-self.max_context:]
            for col, ch in enumerate(line, start=1):
                index = self._index.get(ch)
                if index is None:
                    raise ValueError(f"character {ch!r} (context {row}) is not in the demo LM's "
                                     f"alphabet {''.join(self.alphabet)!r}")
                tokens[row, col] = index
            last[row] = len(line)
        return tokens, last

    def next_char_logits(self, contexts: Sequence[str]) -> np.ndarray:
        """Logits of the next character for each context, shape (len(contexts), len(alphabet))."""
        if self._last_logits is None:
            self._last_logits = make_last_logits(self.config, len(self.alphabet), unflatten(self.params))
        tokens, last = self.encode(contexts)
        out = [np.asarray(self._last_logits(t, last_at)) for t, last_at in _fixed_batches(tokens, last)]
        logits = np.concatenate(out) if out else np.zeros((0, len(self.alphabet)), dtype=np.float32)
        return logits[:len(contexts)]

    def complete(self, prompts: Sequence[str], max_new_chars: int) -> list[str]:
        """Greedy completions without the fusion machinery, each up to (not including) end_of_text."""
        texts = list(prompts)
        done = [False] * len(texts)
        outputs = [""] * len(texts)
        for _ in range(max_new_chars):
            active = [i for i, d in enumerate(done) if not d]
            if not active:
                break
            choice = self.next_char_logits([texts[i] for i in active]).argmax(axis=1)
            for i, c in zip(active, choice):
                ch = self.alphabet[int(c)]
                if ch == self.end_of_text:
                    done[i] = True
                else:
                    texts[i] += ch
                    outputs[i] += ch
        return outputs


def _fixed_batches(tokens: np.ndarray, last: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Chunks padded to one of BATCH_BUCKETS rows (filler rows trail the real ones)."""
    chunks = []
    largest = BATCH_BUCKETS[-1]
    for start in range(0, len(tokens), largest):
        t, last_at = tokens[start:start + largest], last[start:start + largest]
        size = next(b for b in BATCH_BUCKETS if b >= len(t))
        if size > len(t):
            t = np.concatenate([t, np.repeat(t[:1], size - len(t), axis=0)])
            last_at = np.concatenate([last_at, np.repeat(last_at[:1], size - len(last_at))])
        chunks.append((t, last_at))
    return chunks


def build_corpus(settings: TrainSettings, library: Library | None = None,
                 end_of_text: str = END_OF_TEXT) -> tuple[list[corpus.Example], tuple[str, ...], list[str], list[int]]:
    """Training examples, the alphabet, the lines and each line's prompt length."""
    examples = corpus.generate(settings.rules, settings.lengths, settings.examples_per_rule, settings.seed, library)
    lines = [example.line(end_of_text) for example in examples]
    return examples, corpus.alphabet_of(lines, end_of_text), lines, [len(e.prompt) for e in examples]


def evaluate(lm: DemoLM, rules: Sequence[str], lengths: Sequence[int], per_length: int, seed: int,
             library: Library | None = None) -> dict[str, dict[int, float]]:
    """Exact-match accuracy of the LM's own greedy completions, per rule and operand length."""
    library = library or Library(corpus.DEFAULT_LIBRARY)
    scores: dict[str, dict[int, float]] = {}
    for rule in rules:
        entry = library.get(rule)
        rng = random.Random(seed)
        scores[rule] = {}
        for length in lengths:
            examples = corpus.examples_for(entry, corpus.sample_operands(list(entry.meta["vocab"]), [length], per_length, rng))
            got = lm.complete([e.prompt for e in examples], max_new_chars=length + 4)
            scores[rule][length] = sum(g == e.answer for g, e in zip(got, examples)) / len(examples)
    return scores


def train_demo_lm(settings: TrainSettings = DEFAULT_SETTINGS, *, library: Library | None = None,
                  show_progress: bool = True, eval_per_length: int = 25) -> DemoLM:
    """Builds the corpus from the library, trains, and returns the LM with its training record."""
    library = library or Library(corpus.DEFAULT_LIBRARY)
    examples, alphabet, lines, prompt_lengths = build_corpus(settings, library)
    result = _train_with_progress(settings, alphabet, lines, prompt_lengths, show_progress)
    record = {
        "format": FORMAT_VERSION,
        "settings": settings.to_json(),
        "alphabet": "".join(alphabet),
        "end_of_text": END_OF_TEXT,
        "corpus": corpus.describe(examples),
        "conns": {rule: library.get(rule).meta.get("source_sha256") for rule in settings.rules},
        "fusion_specs": {rule: _spec_json(library, rule) for rule in settings.rules},
        "parameters": count_parameters(result.params),
        "training": {"seconds": round(result.seconds, 1), "steps": result.steps,
                     "final_loss": round(result.final_loss, 4), "final_answer_loss": round(result.final_answer_loss, 4)},
    }
    lm = DemoLM(settings.model, alphabet, result.params, END_OF_TEXT, record)
    scores = evaluate(lm, settings.rules, settings.lengths, eval_per_length, settings.seed + 1, library)
    record["accuracy_at_trained_lengths"] = {
        rule: {str(k): v for k, v in by_length.items()} for rule, by_length in scores.items()}
    return lm


def _train_with_progress(settings: TrainSettings, alphabet: Sequence[str], lines: Sequence[str],
                         prompt_lengths: Sequence[int], show_progress: bool) -> TrainResult:
    if not show_progress:
        return train(settings, alphabet, lines, prompt_lengths)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("training demo LM"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("train", total=settings.steps, loss="-")

        def on_step(step: int, loss: float) -> None:
            progress.update(task, completed=step, loss=f"{loss:.3f}")

        return train(settings, alphabet, lines, prompt_lengths, on_step)


def save_demo_lm(lm: DemoLM, directory: Path = DEFAULT_DIR) -> Path:
    """Writes weights.npz and demo_lm.json (with the weights' sha256); returns the json path."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    tmp = weights.with_suffix(".tmp.npz")
    with open(tmp, "wb") as handle:
        # Any: numpy's stub types **kwds against savez's allow_pickle flag too
        arrays: dict[str, Any] = {k: v.astype(np.float32) for k, v in lm.params.items()}
        np.savez_compressed(handle, **arrays)
    tmp.replace(weights)
    record = dict(lm.record, weights_sha256=_sha256(weights), weights_file=WEIGHTS_FILE)
    meta = directory / META_FILE
    meta.write_text(json.dumps(record, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
    lm.record = record
    return meta


def load_demo_lm(directory: Path = DEFAULT_DIR, *, train_if_missing: bool = True) -> DemoLM:
    """The demo LM from ``directory``; when its files are missing, trains (a few minutes,
    progress on stderr) and caches them there."""
    directory = Path(directory)
    weights, meta = directory / WEIGHTS_FILE, directory / META_FILE
    if not (weights.exists() and meta.exists()):
        if not train_if_missing:
            raise DemoLMError(f"no trained demo LM in {directory}: run `python -m autoconn.fusion.demo_lm train`")
        print(f"no trained demo LM in {directory}: training one (about 2-3 minutes on a CPU)", file=sys.stderr)
        lm = train_demo_lm()
        save_demo_lm(lm, directory)
        return lm
    record = json.loads(meta.read_text(encoding="utf-8"))
    if record.get("weights_sha256") != _sha256(weights):
        raise DemoLMError(f"{weights} does not match the sha256 in {meta}: restore both from git or retrain with "
                          f"`python -m autoconn.fusion.demo_lm train`")
    with np.load(weights) as archive:
        params = {name: archive[name] for name in archive.files}
    settings = TrainSettings.from_json(record["settings"])
    return DemoLM(settings.model, tuple(record["alphabet"]), params, record["end_of_text"], record)


def stale_rules(lm: DemoLM, library: Library | None = None) -> list[str]:
    """Rules whose fusion text format changed since the LM was trained (its lines no longer
    match what the fused decoder reads): retrain when this is not empty."""
    library = library or Library(corpus.DEFAULT_LIBRARY)
    trained = lm.record.get("fusion_specs", {})
    return [rule for rule, spec in trained.items() if _spec_json(library, rule) != spec]


def _spec_json(library: Library, rule: str) -> dict[str, Any]:
    entry = library.get(rule)
    return json.loads(json.dumps(spec_of_meta(rule, entry.meta).to_json()))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
