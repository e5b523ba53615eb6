"""The LLM inducer: sample n programs per round from any OpenAI-compatible endpoint, repair
from feedback in later rounds.

Stateless between calls like every inducer: the round's conversation is rebuilt from the task
and the feedback the pipeline hands back, so a resumed run continues where it stopped. Usage
(calls, tokens, seconds) is counted on the endpoint and read by the pipeline after each call.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from autoconn.endpoint import ChatEndpoint, EndpointConfig
from autoconn.inducers.base import Candidate, Feedback
from autoconn.inducers.llm.extract import extract_program
from autoconn.inducers.llm.fewshot import Demonstration, choose_demonstrations
from autoconn.inducers.llm.prompt import conversation, template
from autoconn.task import Example, Task

MAX_NO_CODE_TURNS = 2


@dataclass(frozen=True)
class LLMSettings:
    """How the inducer samples; every field has a flag or an environment variable."""

    samples: int = 4  # candidates asked per round (n)
    temperature: float = 0.8
    fewshot: int = 3  # library demonstrations in the prompt
    max_examples: int = 40  # induction examples shown
    repair_turns: int = 2  # earlier failed rounds replayed as conversation
    max_tokens: int = 4096
    library_dir: str = "generated_conns"

    @classmethod
    def from_environment(cls, **overrides: Any) -> "LLMSettings":
        env = {
            "samples": os.environ.get("AUTOCONN_LLM_SAMPLES"),
            "temperature": os.environ.get("AUTOCONN_LLM_TEMPERATURE"),
            "fewshot": os.environ.get("AUTOCONN_LLM_FEWSHOT"),
        }
        values: dict[str, Any] = {}
        for key, raw in env.items():
            if raw not in (None, ""):
                values[key] = float(raw) if key == "temperature" else int(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
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
    _demo_cache: dict[str, Demonstration] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, *, model: Optional[str] = None, base_url: Optional[str] = None,
                         **settings: Any) -> "LLMInducer":
        config = EndpointConfig.from_environment(model=model, base_url=base_url)
        return cls(ChatEndpoint(config), LLMSettings.from_environment(**settings))

    def usage(self) -> dict[str, Any]:
        return self.endpoint.usage.to_json() | {"model": self.endpoint.config.model}

    def propose(self, task: Task, induction: Sequence[Example], feedback: Sequence[Feedback], *,
                budget_seconds: float, limit: int) -> list[Candidate]:
        demos = choose_demonstrations(task, self.settings.library_dir, self.settings.fewshot, cache=self._demo_cache)
        self.last_demonstrations = [d.name for d in demos]
        samples = max(1, min(limit, self.settings.samples))
        messages = conversation(task, induction, demos, feedback, max_examples=self.settings.max_examples,
                                round_size=samples, repair_turns=self.settings.repair_turns)
        tried = {normalized(f.source) for f in feedback}
        round_number = 1 + len(feedback) // samples
        candidates: list[Candidate] = []
        self.last_transcript = []
        for follow_up in range(MAX_NO_CODE_TURNS + 1):
            try:
                replies = self._sample(messages, samples, budget_seconds)
            except Exception as error:
                self.last_transcript.append({"messages": messages, "error": str(error)})
                raise
            self.last_transcript.append({"messages": messages, "replies": replies, "demonstrations": self.last_demonstrations})
            no_code = None
            for index, reply in enumerate(replies):
                source = extract_program(reply)
                if source is None:
                    no_code = no_code or reply
                    continue
                key = normalized(source)
                if key in tried:
                    continue
                tried.add(key)
                candidates.append(Candidate(source=source, origin="llm",
                                            summary=f"{self.endpoint.config.model}, round {round_number}, sample {index + 1}"))
            if candidates or no_code is None:
                break
            # A reply without code is feedback for the model, not a crash: ask once more.
            messages = [*messages, {"role": "assistant", "content": no_code[:4000]},
                        {"role": "user", "content": template("no_code").strip()}]
        return candidates[:limit]

    def _sample(self, messages: list[dict[str, str]], samples: int, budget_seconds: float) -> list[str]:
        """`samples` replies; servers that ignore `n` (Ollama, llama.cpp) are asked again."""
        replies: list[str] = []
        for _ in range(samples):
            result = self.endpoint.chat(messages, n=samples - len(replies), temperature=self.settings.temperature,
                                        max_tokens=self.settings.max_tokens,
                                        timeout_seconds=min(self.endpoint.config.timeout_seconds, max(5.0, budget_seconds)))
            replies.extend(result.texts)
            if len(replies) >= samples:
                break
        return replies[:samples]
