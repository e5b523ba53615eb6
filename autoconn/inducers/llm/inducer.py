"""The LLM inducer: sample n programs per round from any OpenAI-compatible endpoint, repair
from feedback in later rounds.

The round's conversation is rebuilt from the task and the feedback the pipeline hands back,
so a resumed run continues where it stopped. Each extracted candidate first goes through a
static lint (lint.py, AST only) for the mistakes the primer names; a candidate it stops never
reaches the sandbox: its findings become the next request's feedback within the same round
(kept by the inducer so later repair turns list them too; a resumed run loses only those).
Usage (calls, tokens, seconds) is counted on the endpoint and read by the pipeline after each
call, with the sampling settings (temperature, max_tokens) that were used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from autoconn.endpoint import ChatEndpoint, EndpointConfig
from autoconn.inducers.base import Candidate, Feedback
from autoconn.inducers.llm.extract import extract_program
from autoconn.inducers.llm.fewshot import choose_demonstrations
from autoconn.inducers.llm.lint import lint, lint_message
from autoconn.inducers.llm.prompt import conversation, template
from autoconn.task import Example, Task

MAX_NO_CODE_TURNS = 2
MAX_LINT_TURNS = 2  # lint-only repair requests in one round before the sandbox judges anyway
DEFAULT_MAX_TOKENS = 4096


def default_temperature(samples: int) -> float:
    """One sample: near-greedy (the most likely program); more samples: enough spread to differ."""
    if samples <= 1:
        return 0.2
    if samples <= 3:
        return 0.5
    return 0.8


@dataclass(frozen=True)
class LLMSettings:
    """How the inducer samples; every field has a flag or an environment variable."""

    samples: int = 4  # candidates asked per round (n)
    temperature: Optional[float] = None  # None: default_temperature(samples)
    fewshot: int = 3  # library demonstrations in the prompt
    max_examples: int = 40  # induction examples shown
    repair_turns: int = 2  # earlier failed rounds replayed as conversation (all are listed on one line each)
    max_tokens: int = DEFAULT_MAX_TOKENS
    library_dir: str = "generated_conns"

    @property
    def effective_temperature(self) -> float:
        return self.temperature if self.temperature is not None else default_temperature(self.samples)

    def to_json(self) -> dict[str, Any]:
        """What a run records about how it sampled."""
        return {"samples": self.samples, "temperature": self.effective_temperature,
                "temperature_source": "set" if self.temperature is not None else "default for samples",
                "max_tokens": self.max_tokens, "fewshot": self.fewshot, "max_examples": self.max_examples}

    @classmethod
    def from_environment(cls, **overrides: Any) -> "LLMSettings":
        env = {
            "samples": os.environ.get("AUTOCONN_LLM_SAMPLES"),
            "temperature": os.environ.get("AUTOCONN_LLM_TEMPERATURE"),
            "fewshot": os.environ.get("AUTOCONN_LLM_FEWSHOT"),
            "max_tokens": os.environ.get("AUTOCONN_LLM_MAX_TOKENS"),
        }
        values: dict[str, Any] = {}
        for key, raw in env.items():
            if raw not in (None, ""):
                try:
                    values[key] = float(raw) if key == "temperature" else int(raw)
                except ValueError:
                    raise ValueError(f"AUTOCONN_LLM_{key.upper()}={raw!r} is not a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if int(values.get("max_tokens", DEFAULT_MAX_TOKENS)) < 1:
            raise ValueError("max_tokens must be at least 1")
        return cls(**values)


def normalized(source: str) -> str:
    """Two sources that differ only in blank space and comments are one candidate."""
    lines = [re.sub(r"\s+#.*$", "", line).rstrip() for line in source.splitlines()]
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#"))


@dataclass
class LLMInducer:
    endpoint: ChatEndpoint
    settings: LLMSettings = field(default_factory=LLMSettings)
    name: str = "llm"
    compare_candidates: bool = True  # samples are unordered: verify all that pass, keep the smallest
    last_demonstrations: list[str] = field(default_factory=list)
    last_transcript: list[dict[str, Any]] = field(default_factory=list)  # the pipeline saves it in the run folder
    _cache: dict[Any, Any] = field(default_factory=dict)
    # Candidates the lint stopped never reach the pipeline: kept here (per task) with the
    # position in the pipeline's feedback they came after, so the history lists them too.
    _lint_feedback: dict[str, list[tuple[int, Feedback]]] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, *, model: Optional[str] = None, base_url: Optional[str] = None,
                         **settings: Any) -> "LLMInducer":
        config = EndpointConfig.from_environment(model=model, base_url=base_url)
        return cls(ChatEndpoint(config), LLMSettings.from_environment(**settings))

    def usage(self) -> dict[str, Any]:
        linted = sum(len(items) for items in self._lint_feedback.values())
        return self.endpoint.usage.to_json() | {"model": self.endpoint.config.model, "lint_rejected": linted,
                                                "settings": self.settings.to_json()}

    def history(self, task: Task, feedback: Sequence[Feedback]) -> list[Feedback]:
        """The pipeline's feedback with this inducer's lint rejections in the order they happened."""
        local = self._lint_feedback.get(task.sha256, [])
        merged: list[Feedback] = []
        for position in range(len(feedback) + 1):
            merged.extend(item for at, item in local if at == position)
            if position < len(feedback):
                merged.append(feedback[position])
        merged.extend(item for at, item in local if at > len(feedback))
        return merged

    def propose(self, task: Task, induction: Sequence[Example], feedback: Sequence[Feedback], *,
                budget_seconds: float, limit: int) -> list[Candidate]:
        demos = choose_demonstrations(task, self.settings.library_dir, self.settings.fewshot, induction=induction,
                                      cache=self._cache)
        self.last_demonstrations = [d.name for d in demos]
        samples = max(1, min(limit, self.settings.samples))
        local = self._lint_feedback.setdefault(task.sha256, [])
        history = self.history(task, feedback)
        messages = conversation(task, induction, demos, history, max_examples=self.settings.max_examples,
                                round_size=samples, repair_turns=self.settings.repair_turns)
        tried = {normalized(f.source) for f in history}
        round_number = 1 + len(feedback) // samples
        candidates: list[Candidate] = []
        stopped: list[Candidate] = []  # lint failures, proposed anyway if nothing else comes
        self.last_transcript = []
        no_code_turns = lint_turns = 0
        while True:
            try:
                replies, reasons = self._sample(messages, samples, budget_seconds)
            except Exception as error:
                self.last_transcript.append({"messages": messages, "error": str(error), "request": self._request_record(samples)})
                raise
            turn: dict[str, Any] = {"messages": messages, "replies": replies, "demonstrations": self.last_demonstrations,
                                    "request": self._request_record(samples), "finish_reasons": reasons}
            self.last_transcript.append(turn)
            no_code, linted = None, []
            for index, reply in enumerate(replies):
                source = extract_program(reply)
                if source is None:
                    if no_code is None:
                        no_code = (reply, reasons[index] if index < len(reasons) else "")
                    continue
                key = normalized(source)
                if key in tried:
                    continue
                tried.add(key)
                candidate = Candidate(source=source, origin="llm",
                                      summary=f"{self.endpoint.config.model}, round {round_number}, sample {index + 1}")
                problems = lint(source, max_seq_len=task.max_seq_len)
                if problems:
                    found = Feedback(source=source, stage="lint", message=lint_message(problems))
                    local.append((len(feedback), found))
                    linted.append(found)
                    stopped.append(candidate)
                    continue
                candidates.append(candidate)
            if linted:
                turn["lint"] = [f.message for f in linted]
            if candidates:
                break
            if linted and lint_turns < MAX_LINT_TURNS:
                # No sandbox round trip: the lint's findings are the next request's feedback.
                lint_turns += 1
                history = self.history(task, feedback)
                messages = conversation(task, induction, demos, history, max_examples=self.settings.max_examples,
                                        round_size=samples, repair_turns=self.settings.repair_turns)
                continue
            if linted:
                candidates = stopped  # the lint reports, the sandbox judges: never the lint's last word
                break
            if no_code is not None and no_code_turns < MAX_NO_CODE_TURNS:
                # A reply without code is feedback for the model, not a crash: ask once more.
                no_code_turns += 1
                reply, reason = no_code
                ask = template("no_code").strip()
                if reason == "length":
                    ask = (f"Your reply was cut off at the token limit (max_tokens={self.settings.max_tokens}) before any "
                           f"code: think less, or raise --max-tokens / AUTOCONN_LLM_MAX_TOKENS. ") + ask
                messages = [*messages, {"role": "assistant", "content": reply[:4000]}, {"role": "user", "content": ask}]
                continue
            break
        return candidates[:limit]

    def _request_record(self, samples: int) -> dict[str, Any]:
        return {"n": samples, "temperature": self.settings.effective_temperature, "max_tokens": self.settings.max_tokens}

    def _sample(self, messages: list[dict[str, str]], samples: int, budget_seconds: float) -> tuple[list[str], list[str]]:
        """`samples` replies and why each ended; servers that ignore `n` (Ollama, llama.cpp) are asked again."""
        replies: list[str] = []
        reasons: list[str] = []
        for _ in range(samples):
            result = self.endpoint.chat(messages, n=samples - len(replies), temperature=self.settings.effective_temperature,
                                        max_tokens=self.settings.max_tokens,
                                        timeout_seconds=min(self.endpoint.config.timeout_seconds, max(5.0, budget_seconds)))
            replies.extend(result.texts)
            reasons.extend(result.finish_reasons)
            if len(replies) >= samples:
                break
        return replies[:samples], reasons[:samples]
