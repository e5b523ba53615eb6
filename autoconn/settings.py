"""The user's settings: the one place AutoCoNN reads its environment variables.

Read at call time (``load()``), never at import, so a test or a long-lived process sees the
environment as it is now. Each variable is declared once in ``VARIABLES`` (name, default, what
it does): the README's "Settings" table lists the same ones (a test holds the two together).
A bad value raises :class:`SettingsError` naming the variable and what to write instead (the
CLI turns it into one line and exit 2). Flags win over the environment: callers pass them to
:meth:`Settings.with_flags`, which checks them by the same rules.

Plain dataclasses rather than pydantic-settings: a dozen scalars do not need a schema library,
and importing one costs ~0.3 s on every command that reads a setting.

Not here, on purpose: the ``openai`` and ``docker`` packages' other variables (read by those
packages; ``DOCKER_HOST`` for instance) and the crash tests' fault hooks in ``faults.py``
(``AUTOCONN_KILL_AT``, ``AUTOCONN_NO_EXCHANGE``), which are test hooks, not settings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_SANDBOX_IMAGE = "autoconn-sandbox:latest"
DEFAULT_TIMEOUT_SECONDS = 120.0
DEFAULT_MAX_RETRIES = 4
DEFAULT_SAMPLES = 4
DEFAULT_FEWSHOT = 3
DEFAULT_MAX_TOKENS = 4096
MAX_SAMPLES = 16  # the same bound as --samples


class SettingsError(ValueError):
    """A setting (an environment variable or a flag) has a value AutoCoNN cannot use."""


class Secret:
    """A value that never shows itself: repr, str and format print ``***``.

    Only the code that sends it (the endpoint's HTTP client) calls :meth:`reveal`, so a run
    log, a transcript, ``--json`` or a traceback can print a settings object safely."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Variable:
    """One documented setting: its variable, the flag that wins over it, its default, its meaning."""

    name: str
    field: str
    default: str
    meaning: str
    flag: str = ""


VARIABLES: tuple[Variable, ...] = (
    Variable("AUTOCONN_MODEL", "model", "unset", "the model name at the endpoint; the LLM inducer needs one "
             "(`--inducer auto` uses the LLM only when it is set)", "--model"),
    Variable("OPENAI_BASE_URL", "base_url", "OpenAI's API", "the OpenAI-compatible endpoint, e.g. "
             "http://localhost:8000/v1", "--base-url"),
    Variable("OPENAI_API_KEY", "api_key", "unset", "the endpoint's key; required for OpenAI's API, local servers take "
             "any. Never printed, logged or saved"),
    Variable("AUTOCONN_LLM_TIMEOUT", "llm_timeout", f"{DEFAULT_TIMEOUT_SECONDS:g}", "seconds one LLM call may take"),
    Variable("AUTOCONN_LLM_RETRIES", "llm_retries", str(DEFAULT_MAX_RETRIES), "retries of a failed LLM call (429, 5xx, "
             "timeouts, connection errors), with backoff honouring Retry-After"),
    Variable("AUTOCONN_LLM_SAMPLES", "llm_samples", str(DEFAULT_SAMPLES), f"candidates sampled per round (1 to {MAX_SAMPLES})",
             "--samples"),
    Variable("AUTOCONN_LLM_TEMPERATURE", "llm_temperature", "0.2 for 1 sample, 0.5 for 2-3, 0.8 for 4 or more",
             "sampling temperature (0 to 2)", "--temperature"),
    Variable("AUTOCONN_LLM_MAX_TOKENS", "llm_max_tokens", str(DEFAULT_MAX_TOKENS), "most tokens per reply (raise it for "
             "models that think at length)", "--max-tokens"),
    Variable("AUTOCONN_LLM_FEWSHOT", "llm_fewshot", str(DEFAULT_FEWSHOT), "library demonstrations in the first prompt "
             "(0 for none)"),
    Variable("AUTOCONN_SANDBOX_IMAGE", "sandbox_image", DEFAULT_SANDBOX_IMAGE, "the Docker image the docker sandbox runs "
             "and `autoconn sandbox build` builds"),
    Variable("AUTOCONN_CACHE_DIR", "cache_dir", "$XDG_CACHE_HOME/autoconn, else ~/.cache/autoconn "
             "(/var/cache/autoconn as root)", "where the process sandbox keeps its JAX compilation cache"),
)


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """Root's cache is shared with the sandbox user; everyone else follows the XDG convention."""
    if os.geteuid() == 0:
        return Path("/var/cache/autoconn")
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "autoconn"


@dataclass(frozen=True)
class Settings:
    """Every user setting, parsed and checked. Build it with :func:`load`."""

    model: str | None = None
    base_url: str | None = None
    api_key: Secret | None = None
    llm_timeout: float = DEFAULT_TIMEOUT_SECONDS
    llm_retries: int = DEFAULT_MAX_RETRIES
    llm_samples: int = DEFAULT_SAMPLES
    llm_temperature: float | None = None  # None: a default that fits the samples (the LLM inducer's)
    llm_max_tokens: int = DEFAULT_MAX_TOKENS
    llm_fewshot: int = DEFAULT_FEWSHOT
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    cache_dir: Path = field(default_factory=lambda: default_cache_dir(os.environ))

    def with_flags(self, **flags: Any) -> Settings:
        """These settings with the flags given (None: not given) in their place, checked like the variables."""
        by_field = {v.field: v for v in VARIABLES}
        changes: dict[str, Any] = {}
        for name, value in flags.items():
            if value is None:
                continue
            if name not in by_field:
                raise TypeError(f"no setting {name!r}")
            variable = by_field[name]
            changes[name] = _PARSERS[name](variable.flag or variable.name, str(value))
        return replace(self, **changes)


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings in `environ` (default: this process's environment, now). An empty variable
    counts as unset. Every bad value is reported at once, each naming its variable."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for variable in VARIABLES:
        raw = environ.get(variable.name, "")
        if raw.strip() == "":
            continue
        try:
            values[variable.field] = _PARSERS[variable.field](variable.name, raw)
        except SettingsError as error:
            problems.append(str(error))
    if problems:
        raise SettingsError("; ".join(problems))
    values.setdefault("cache_dir", default_cache_dir(environ))
    return Settings(**values)


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _url(name: str, raw: str) -> str:
    url = raw.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise SettingsError(f"{name}={raw!r} is not an http(s) URL: write it whole, e.g. http://localhost:8000/v1")
    return url


def _image(name: str, raw: str) -> str:
    image = raw.strip()
    if any(c.isspace() for c in image):
        raise SettingsError(f"{name}={raw!r} is not a Docker image name: write one like {DEFAULT_SANDBOX_IMAGE}")
    return image


def _whole(low: int, high: int | None, example: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a whole number: write one like {example}, or unset it") from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise SettingsError(f"{name}={raw!r} is out of range: it must be {span}")
        return value
    return parse


def _number(low: float, high: float | None, example: float, *, above_low: bool = False) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a number: write one like {example:g}, or unset it") from None
        if not math.isfinite(value):
            raise SettingsError(f"{name}={raw!r} is not a finite number: write one like {example:g}, or unset it")
        if value < low or (above_low and value == low) or (high is not None and value > high):
            span = ((f"more than {low:g}" if above_low else f"at least {low:g}")
                    + (f" and at most {high:g}" if high is not None else ""))
            raise SettingsError(f"{name}={raw!r} is out of range: it must be {span}")
        return value
    return parse


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "model": _text,
    "base_url": _url,
    "api_key": lambda name, raw: Secret(raw.strip()),
    "llm_timeout": _number(0.0, None, DEFAULT_TIMEOUT_SECONDS, above_low=True),
    "llm_retries": _whole(0, 20, DEFAULT_MAX_RETRIES),
    "llm_samples": _whole(1, MAX_SAMPLES, DEFAULT_SAMPLES),
    "llm_temperature": _number(0.0, 2.0, 0.5),
    "llm_max_tokens": _whole(1, None, DEFAULT_MAX_TOKENS),
    "llm_fewshot": _whole(0, 20, DEFAULT_FEWSHOT),
    "sandbox_image": _image,
    "cache_dir": lambda name, raw: Path(raw.strip()).expanduser(),
}


def prefer_ray_token_auth() -> None:
    """Ray's own RAY_AUTH_MODE: a cluster made with `ray start` (Ray 2.60) refuses drivers without its
    token, which Ray sends only in token mode; set it when the token file exists and the user chose nothing."""
    if "RAY_AUTH_MODE" not in os.environ and (Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
