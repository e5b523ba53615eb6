"""One OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, a llama.cpp server...).

Configuration follows the `openai` package's own variables (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``) plus ``AUTOCONN_MODEL``, so a user who already points other tools at a
server changes nothing; all are read by :mod:`autoconn.settings`, and the key stays a
:class:`~autoconn.settings.Secret` until the HTTP client needs it. Retries with exponential
backoff on 408/409/429/5xx, timeouts and
connection errors are the `openai` client's own (it honours ``Retry-After``); this module
turns what is left into an ``EndpointError`` that says what to do, and counts calls and tokens
for the run summary.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import openai

from autoconn import settings as user_settings
from autoconn.settings import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_SECONDS, Secret

LOCAL_API_KEY = Secret("not-needed")  # local servers (vLLM, Ollama, llama.cpp) accept any key


class EndpointError(Exception):
    """The endpoint cannot be used: not configured, unreachable, key refused, model unknown, timeout."""


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how to reach the model. Plain data, safe to print or log: the key is a Secret."""

    model: str
    base_url: str | None = None
    api_key: Secret = LOCAL_API_KEY
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES

    @classmethod
    def from_environment(cls, *, model: str | None = None, base_url: str | None = None,
                         timeout_seconds: float | None = None, max_retries: int | None = None) -> EndpointConfig:
        """The user's settings, read now, with these flags (not None) in their place."""
        return cls.from_settings(user_settings.load().with_flags(model=model, base_url=base_url, llm_timeout=timeout_seconds,
                                                                 llm_retries=max_retries))

    @classmethod
    def from_settings(cls, settings: user_settings.Settings) -> EndpointConfig:
        """Raises EndpointError when no model is named, or OpenAI's own API is meant and no key is set."""
        if not settings.model:
            raise EndpointError(
                "no model configured: set AUTOCONN_MODEL (or pass --model), and OPENAI_BASE_URL "
                "(or --base-url) for a server other than OpenAI's"
            )
        key = settings.api_key
        if not key:
            if settings.base_url is None:
                raise EndpointError("OPENAI_API_KEY is not set: OpenAI's API needs a key "
                                    "(or set OPENAI_BASE_URL to a local server)")
            key = LOCAL_API_KEY
        return cls(model=settings.model, base_url=settings.base_url, api_key=key, timeout_seconds=settings.llm_timeout,
                   max_retries=settings.llm_retries)

    def describe(self) -> str:
        return f"{self.model} at {self.base_url or 'https://api.openai.com/v1'}"


@dataclass
class ChatResult:
    """The choices of one chat completion call."""

    texts: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: int
    seconds: float


@dataclass
class EndpointUsage:
    """Counted across every call of one endpoint object; `since` gives what a stretch of calls used."""

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def since(self, before: EndpointUsage) -> EndpointUsage:
        """What was used after `before` (a copy taken earlier with `snapshot`)."""
        return EndpointUsage(self.calls - before.calls, self.failed_calls - before.failed_calls,
                             self.prompt_tokens - before.prompt_tokens, self.completion_tokens - before.completion_tokens,
                             self.seconds - before.seconds)

    def snapshot(self) -> EndpointUsage:
        return replace(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.prompt_tokens + self.completion_tokens,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ChatEndpoint:
    """A chat-completions client with errors a user can act on and usage counters."""

    config: EndpointConfig
    usage: EndpointUsage = field(default_factory=EndpointUsage)
    _client: openai.OpenAI | None = field(default=None, repr=False, compare=False)

    def client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(
                api_key=self.config.api_key.reveal(),
                base_url=self.config.base_url,
                timeout=self.config.timeout_seconds,
                max_retries=self.config.max_retries,
            )
        return self._client

    def chat(
        self,
        messages: Sequence[dict[str, str]],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        timeout_seconds: float | None = None,
    ) -> ChatResult:
        """One call; `n` choices. Raises EndpointError once the client's retries are spent."""
        request: dict[str, Any] = {"model": self.config.model, "messages": list(messages), "temperature": temperature}
        if n != 1:
            request["n"] = n
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        if stop:
            request["stop"] = list(stop)
        started = time.monotonic()
        try:
            client = self.client() if timeout_seconds is None else self.client().with_options(timeout=timeout_seconds)
            response = client.chat.completions.create(**request)
        except openai.APIError as error:
            self.usage.failed_calls += 1
            self.usage.seconds += time.monotonic() - started
            raise EndpointError(self._explain(error, timeout_seconds or self.config.timeout_seconds)) from error
        seconds = time.monotonic() - started
        texts = [(choice.message.content or "") for choice in response.choices]
        reasons = [str(choice.finish_reason or "") for choice in response.choices]
        usage = response.usage
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        self.usage.calls += 1
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        self.usage.seconds += seconds
        if not texts:
            raise EndpointError(f"{self.config.describe()} returned no choices")
        return ChatResult(texts, reasons, prompt_tokens, completion_tokens, seconds)

    def _explain(self, error: openai.APIError, timeout: float) -> str:
        where = self.config.describe()
        retries = f"after {self.config.max_retries} retries"
        if isinstance(error, openai.APITimeoutError):
            return f"{where} did not answer within {timeout:g} s ({retries}); raise AUTOCONN_LLM_TIMEOUT or check the server"
        if isinstance(error, openai.APIConnectionError):
            return f"cannot reach {where} ({retries}): is the server running and OPENAI_BASE_URL / --base-url right?"
        if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return f"{where} refused the API key (HTTP {error.status_code}): check OPENAI_API_KEY"
        if isinstance(error, openai.NotFoundError):
            return (f"{where}: model or route not found (HTTP 404): check AUTOCONN_MODEL / --model "
                    "and that the base URL ends in /v1")
        if isinstance(error, openai.RateLimitError):
            return f"{where} kept rate-limiting (HTTP 429 {retries}); wait, or lower --samples"
        if isinstance(error, openai.APIStatusError):
            return f"{where} failed with HTTP {error.status_code} ({retries}): {_short(error.message)}"
        return f"{where}: {_short(str(error))}"


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
