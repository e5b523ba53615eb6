"""Training the demo LM on the CPU in a few minutes: AdamW, warmup then cosine decay.

Every example is one line, fed as ``BOS`` + the line with the loss on each next character;
operand characters are random, so the loss cannot go to zero — the answer-only loss and
accuracy are the figures that say whether the LM learned the rules at the trained lengths.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from autoconn.fusion.demo_lm.model import BOS_ID, FIRST_CHAR_ID, PAD_ID, LMConfig, build_forward, flatten


@dataclass(frozen=True)
class TrainSettings:
    """What decides the trained weights (stored beside them, and hashed)."""

    rules: tuple[str, ...] = ("parity", "reverse")
    lengths: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    examples_per_rule: int = 20000
    steps: int = 2000
    batch_size: int = 16  # rows of row_width characters (several packed lines each)
    row_width: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    seed: int = 0
    model: LMConfig = field(default_factory=LMConfig)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rules"], data["lengths"] = list(self.rules), list(self.lengths)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainSettings:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "model"}
        values["rules"], values["lengths"] = tuple(values["rules"]), tuple(values["lengths"])
        return cls(model=LMConfig.from_json(data.get("model", {})), **values)


@dataclass
class TrainResult:
    params: dict[str, np.ndarray]
    final_loss: float  # mean over the last 100 steps, all predicted characters
    final_answer_loss: float  # the same, answer characters and end_of_text only
    seconds: float
    steps: int


def pack_lines(lines: Sequence[str], prompt_lengths: Sequence[int], alphabet: Sequence[str],
               width: int) -> dict[str, np.ndarray]:
    """Lines packed greedily into rows of ``width`` (most lines are far shorter than the
    widest; padding each to it wasted ~half the compute). Per row: inputs ``BOS + line[:-1]``
    for each line, targets ``line`` (alphabet ids), positions from each line's BOS, segment
    ids, and masks of real targets and of answer targets (the characters after the prompt)."""
    index = {ch: i for i, ch in enumerate(alphabet)}
    rows: list[list[tuple[str, int]]] = [[]]
    used = 0
    for line, prompt in zip(lines, prompt_lengths):
        if len(line) > width:
            raise ValueError(f"training line {line!r} is longer than the {width} positions of a row")
        if used + len(line) > width:
            rows.append([])
            used = 0
        rows[-1].append((line, prompt))
        used += len(line)
    shape = (len(rows), width)
    data = {"inputs": np.full(shape, PAD_ID, np.int32), "targets": np.zeros(shape, np.int32),
            "positions": np.zeros(shape, np.int32), "segments": np.full(shape, -1, np.int32),
            "real": np.zeros(shape, np.float32), "answer": np.zeros(shape, np.float32)}
    for r, row in enumerate(rows):
        col = 0
        for segment, (line, prompt) in enumerate(row):
            ids = np.asarray([index[ch] for ch in line], np.int32)
            span = slice(col, col + len(ids))
            data["inputs"][r, span] = np.concatenate([[BOS_ID], ids[:-1] + FIRST_CHAR_ID])
            data["targets"][r, span] = ids
            data["positions"][r, span] = np.arange(len(ids))
            data["segments"][r, span] = segment
            data["real"][r, span] = 1.0
            data["answer"][r, col + prompt:col + len(ids)] = 1.0
            col += len(ids)
    return data


def train(settings: TrainSettings, alphabet: Sequence[str], lines: Sequence[str], prompt_lengths: Sequence[int],
          on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Trains from scratch, deterministically for a given seed and data."""
    import jax
    import jax.numpy as jnp
    import optax

    config = settings.model
    data = pack_lines(lines, prompt_lengths, alphabet, settings.row_width)
    order = ("inputs", "positions", "segments", "targets", "real", "answer")
    network = build_forward(config, len(alphabet))
    params = network.init(jax.random.PRNGKey(settings.seed), *(jnp.asarray(data[k][:1]) for k in order[:3]))
    warmup = min(settings.warmup_steps, max(1, settings.steps // 10))  # short test runs still decay
    schedule = optax.warmup_cosine_decay_schedule(0.0, settings.learning_rate, warmup,
                                                  max(settings.steps, warmup + 1), settings.learning_rate * 0.05)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=settings.weight_decay))
    opt_state = optimizer.init(params)

    def losses(params: Any, inputs: Any, positions: Any, segments: Any, targets: Any, real: Any,
               answer: Any) -> tuple[Any, Any]:
        logits = network.apply(params, inputs, positions, segments)
        per_char = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        loss = (per_char * real).sum() / real.sum()
        return loss, (per_char * answer).sum() / jnp.maximum(answer.sum(), 1.0)

    @jax.jit
    def step(params: Any, opt_state: Any, batch: tuple[Any, ...]) -> tuple[Any, Any, Any, Any]:
        (loss, answer_loss), grads = jax.value_and_grad(losses, has_aux=True)(params, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, answer_loss

    rng = np.random.default_rng(settings.seed)
    history: list[tuple[Any, Any]] = []  # device scalars: reading them every step would sync every step
    start = time.perf_counter()
    for number in range(settings.steps):
        rows = rng.integers(0, len(data["inputs"]), settings.batch_size)
        batch = tuple(jnp.asarray(data[k][rows]) for k in order)
        params, opt_state, loss, answer_loss = step(params, opt_state, batch)
        history.append((loss, answer_loss))
        if on_step is not None and (number % 50 == 0 or number == settings.steps - 1):
            on_step(number + 1, float(loss))
    tail = np.asarray([(float(a), float(b)) for a, b in history[-100:]], dtype=np.float64)
    return TrainResult(params=flatten(params), final_loss=float(tail[:, 0].mean()),
                       final_answer_loss=float(tail[:, 1].mean()), seconds=time.perf_counter() - start,
                       steps=settings.steps)
