"""Who writes candidate programs: the offline search, an LLM, or files a person wrote."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autoconn.inducers.base import Candidate, Counterexample, Feedback, Inducer

INDUCER_CHOICES = ("auto", "search", "llm", "files")


class InducerUnavailable(Exception):
    """The inducer asked for cannot run here; the message says what to configure."""


def llm_configured(model: str | None = None) -> bool:
    """An LLM counts as configured when a model is named for an OpenAI-compatible endpoint."""
    from autoconn.settings import load

    return bool(model or load().model)


def make_inducers(kind: str, candidates: Sequence[str] = (), llm_options: dict[str, Any] | None = None
                  ) -> tuple[dict[str, Inducer], list[str]]:
    """The inducers for `--inducer kind` and the order to try them in (auto: LLM, then search).

    `llm_options` (model, base_url, samples, temperature, library_dir) come from flags and win
    over the environment."""
    if kind not in INDUCER_CHOICES:
        raise InducerUnavailable(f"unknown inducer {kind!r}; choose one of {', '.join(INDUCER_CHOICES)}")
    if kind == "files":
        if not candidates:
            raise InducerUnavailable("--inducer files needs at least one --candidate PROGRAM.py")
        from autoconn.inducers.files import FilesInducer
        return {"files": FilesInducer(candidates)}, ["files"]
    inducers: dict[str, Inducer] = {}
    chain: list[str] = []
    options = {k: v for k, v in (llm_options or {}).items() if v is not None}
    if kind == "llm" or (kind == "auto" and llm_configured(options.get("model"))):
        inducers["llm"] = _make_llm(options)
        chain.append("llm")
    if kind in ("auto", "search"):
        from autoconn.inducers.search import SearchInducer
        inducers["search"] = SearchInducer()
        chain.append("search")
    return inducers, chain


def _make_llm(options: dict[str, Any]) -> Inducer:
    if not llm_configured(options.get("model")):
        raise InducerUnavailable("--inducer llm: no model configured; set AUTOCONN_MODEL or pass --model (and OPENAI_BASE_URL / "
                                 "--base-url, OPENAI_API_KEY for your OpenAI-compatible endpoint), or use --inducer search")
    from autoconn.endpoint import EndpointError
    from autoconn.inducers.llm import LLMInducer
    try:
        return LLMInducer.from_environment(**options)
    except (EndpointError, ValueError) as error:
        raise InducerUnavailable(f"--inducer llm: {error}") from None


__all__ = ["Candidate", "Counterexample", "Feedback", "Inducer", "InducerUnavailable", "make_inducers", "llm_configured",
           "INDUCER_CHOICES"]
