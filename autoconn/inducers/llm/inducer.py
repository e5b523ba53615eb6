"""The LLM inducer: sample n programs per round from any OpenAI-compatible endpoint, repair
from feedback in later rounds.

Stateless between calls: the round's conversation is rebuilt from the task and the feedback
the pipeline hands back, so a resumed run continues where it stopped. Each extracted candidate
first goes through a static lint (lint.py, AST only) for the mistakes the primer names; a
candidate it stops never reaches the sandbox: its findings become the next request's feedback
within the same call, and come back in ``Proposal.rejected`` for the pipeline to keep with the
run's feedback (so later rounds, and a resumed run, list them too). Everything else a call
produced (its transcript, what it used, why it stopped, an endpoint failure) is in the
:class:`Proposal` it returns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autoconn import settings as user_settings
from autoconn.endpoint import ChatEndpoint, EndpointConfig, EndpointError
from autoconn.inducers.base import Candidate, Feedback, Proposal
from autoconn.inducers.llm.extract import extract_program
from autoconn.inducers.llm.fewshot import choose_demonstrations
from autoconn.inducers.llm.lint import lint, lint_message
from autoconn.inducers.llm.prompt import conversation, template
from autoconn.task import Example, Task

MAX_NO_CODE_TURNS = 2
MAX_LINT_TURNS = 2  # lint-only repair requests in one round before the sandbox judges anyway
DEFAULT_MAX_TOKENS = user_settings.DEFAULT_MAX_TOKENS


def default_temperature(samples: int) -> float:
    """One sample: near-greedy (the most likely program); more samples: enough spread to differ."""
    if samples <= 1:
        return 0.2
    if samples <= 3:
        return 0.5
    return 0.8


@dataclass(frozen=True)
class LLMSettings:
    """How the inducer samples: the user's settings (flags, then variables) plus fixed prompt sizes."""

    samples: int = user_settings.DEFAULT_SAMPLES  # candidates asked per round (n)
    temperature: float | None = None  # None: default_temperature(samples)
    fewshot: int = user_settings.DEFAULT_FEWSHOT  # library demonstrations in the prompt
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
    def from_settings(cls, settings: user_settings.Settings, *, library_dir: str | None = None) -> LLMSettings:
        return cls(samples=settings.llm_samples, temperature=settings.llm_temperature, fewshot=settings.llm_fewshot,
                   max_tokens=settings.llm_max_tokens, library_dir=library_dir or cls.library_dir)


def normalized(source: str) -> str:
    """Two sources that differ only in blank space and comments are one candidate."""
    lines = [re.sub(r"\s+#.*$", "", line).rstrip() for line in source.splitlines()]
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#"))


@dataclass
class LLMInducer:
    """Keeps no state between calls but a cache of the library's demonstrations (a cache: dropping it changes nothing)."""

    endpoint: ChatEndpoint
    settings: LLMSettings = field(default_factory=LLMSettings)
    name: str = "llm"
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_environment(cls, *, model: str | None = None, base_url: str | None = None,
                         samples: int | None = None, temperature: float | None = None,
                         max_tokens: int | None = None, library_dir: str | None = None) -> LLMInducer:
        """The user's settings, read now, with the flags given (not None) in their place."""
        chosen = user_settings.load().with_flags(model=model, base_url=base_url, llm_samples=samples,
                                                 llm_temperature=temperature, llm_max_tokens=max_tokens)
        return cls(ChatEndpoint(EndpointConfig.from_settings(chosen)), LLMSettings.from_settings(chosen, library_dir=library_dir))

    def propose(self, task: Task, induction: Sequence[Example], feedback: Sequence[Feedback], *,
                budget_seconds: float, limit: int) -> Proposal:
        before = self.endpoint.usage.snapshot()
        sampled = _Call(self, task, induction, feedback, budget_seconds, limit).run()
        usage = self.endpoint.usage.since(before).to_json() | {
            "lint_rejected": len(sampled.rejected), "model": self.endpoint.config.model, "settings": self.settings.to_json()}
        return Proposal(candidates=tuple(sampled.candidates[:limit]), rejected=tuple(sampled.rejected),
                        transcript=tuple(sampled.transcript), usage=usage, stop_message=sampled.stop_message,
                        error=sampled.error, compare_candidates=True)  # samples are unordered: verify all, keep the smallest

    def request_record(self, samples: int) -> dict[str, Any]:
        return {"n": samples, "temperature": self.settings.effective_temperature, "max_tokens": self.settings.max_tokens}

    def sample(self, messages: list[dict[str, str]], samples: int, budget_seconds: float) -> tuple[list[str], list[str]]:
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


@dataclass
class _Call:
    """One `propose` call: requests until some candidate passes the lint (or the turns run out).

    Lives only for the call; what it gathered becomes the Proposal."""

    inducer: LLMInducer
    task: Task
    induction: Sequence[Example]
    feedback: Sequence[Feedback]
    budget_seconds: float
    limit: int
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[Feedback] = field(default_factory=list)  # the lint's, in the order they came
    transcript: list[dict[str, Any]] = field(default_factory=list)
    stop_message: str = ""
    error: str = ""

    def run(self) -> _Call:
        settings = self.inducer.settings
        demos = choose_demonstrations(self.task, settings.library_dir, settings.fewshot, induction=self.induction,
                                      cache=self.inducer._cache)
        demo_names = [d.name for d in demos]
        samples = max(1, min(self.limit, settings.samples))
        history = list(self.feedback)
        tried = {normalized(f.source) for f in history}
        round_number = 1 + len(self.feedback) // samples
        stopped: list[Candidate] = []  # lint failures, proposed anyway if nothing else comes
        no_code_turns = lint_turns = repeats = 0
        messages = self._conversation(demos, history, samples)
        while True:
            try:
                replies, reasons = self.inducer.sample(messages, samples, self.budget_seconds)
            except EndpointError as failure:
                self.transcript.append({"messages": messages, "error": str(failure),
                                        "request": self.inducer.request_record(samples)})
                self.error = str(failure)
                return self
            turn: dict[str, Any] = {"messages": messages, "replies": replies, "demonstrations": demo_names,
                                    "request": self.inducer.request_record(samples), "finish_reasons": reasons}
            self.transcript.append(turn)
            no_code, linted = None, []
            for index, reply in enumerate(replies):
                source = extract_program(reply)
                if source is None:
                    if no_code is None:
                        no_code = (reply, reasons[index] if index < len(reasons) else "")
                    continue
                key = normalized(source)
                if key in tried:
                    repeats += 1
                    continue
                tried.add(key)
                candidate = Candidate(source=source, origin="llm",
                                      summary=f"{self.inducer.endpoint.config.model}, round {round_number}, sample {index + 1}")
                problems = lint(source, max_seq_len=self.task.max_seq_len)
                if problems:
                    linted.append(Feedback(source=source, stage="lint", message=lint_message(problems)))
                    stopped.append(candidate)
                    continue
                self.candidates.append(candidate)
            if linted:
                turn["lint"] = [f.message for f in linted]
                self.rejected.extend(linted)
                history.extend(linted)
            if self.candidates:
                return self
            if linted and lint_turns < MAX_LINT_TURNS:
                # No sandbox round trip: the lint's findings are the next request's feedback.
                lint_turns += 1
                messages = self._conversation(demos, history, samples)
                continue
            if linted:
                self.candidates = stopped  # the lint reports, the sandbox judges: never the lint's last word
                return self
            if no_code is not None and no_code_turns < MAX_NO_CODE_TURNS:
                # A reply without code is feedback for the model, not a crash: ask once more.
                no_code_turns += 1
                messages = self._ask_for_code(messages, *no_code)
                continue
            self.stop_message = (f"the model's replies held no code after {no_code_turns + 1} request(s)" if no_code is not None
                                 else f"every sample repeated an earlier attempt ({repeats})" if repeats
                                 else "the model gave no reply")
            return self

    def _conversation(self, demos: Sequence[Any], history: Sequence[Feedback], samples: int) -> list[dict[str, str]]:
        settings = self.inducer.settings
        return conversation(self.task, self.induction, demos, history, max_examples=settings.max_examples,
                            round_size=samples, repair_turns=settings.repair_turns)

    def _ask_for_code(self, messages: list[dict[str, str]], reply: str, reason: str) -> list[dict[str, str]]:
        ask = template("no_code").strip()
        if reason == "length":
            ask = (f"Your reply was cut off at the token limit (max_tokens={self.inducer.settings.max_tokens}) before any "
                   f"code: think less, or raise --max-tokens / AUTOCONN_LLM_MAX_TOKENS. ") + ask
        return [*messages, {"role": "assistant", "content": reply[:4000]}, {"role": "user", "content": ask}]
