"""Who writes candidate programs: the offline search, an LLM, or files a person wrote."""

from __future__ import annotations

import os
from typing import Sequence

from autoconn.inducers.base import Candidate, Counterexample, Feedback, Inducer

INDUCER_CHOICES = ("auto", "search", "llm", "files")


class InducerUnavailable(Exception):
    """The inducer asked for cannot run here; the message says what to configure."""


def llm_configured() -> bool:
    """An LLM counts as configured when a model is named for an OpenAI-compatible endpoint."""
    return bool(os.environ.get("AUTOCONN_MODEL"))


def make_inducers(kind: str, candidates: Sequence[str] = ()) -> tuple[dict[str, Inducer], list[str]]:
    """The inducers for `--inducer kind` and the order to try them in (auto: LLM, then search)."""
    if kind not in INDUCER_CHOICES:
        raise InducerUnavailable(f"unknown inducer {kind!r}; choose one of {', '.join(INDUCER_CHOICES)}")
    if kind == "files":
        if not candidates:
            raise InducerUnavailable("--inducer files needs at least one --candidate PROGRAM.py")
        from autoconn.inducers.files import FilesInducer
        return {"files": FilesInducer(candidates)}, ["files"]
    inducers: dict[str, Inducer] = {}
    chain: list[str] = []
    if kind == "llm" or (kind == "auto" and llm_configured()):
        inducers["llm"] = _make_llm()
        chain.append("llm")
    if kind in ("auto", "search"):
        from autoconn.inducers.search import SearchInducer
        inducers["search"] = SearchInducer()
        chain.append("search")
    return inducers, chain


def _make_llm() -> Inducer:
    if not llm_configured():
        raise InducerUnavailable("--inducer llm: no model configured; set AUTOCONN_MODEL (and OPENAI_BASE_URL / "
                                 "OPENAI_API_KEY for your OpenAI-compatible endpoint), or use --inducer search")
    try:
        from autoconn.inducers.llm import LLMInducer  # type: ignore[import-not-found]
    except ImportError:
        raise InducerUnavailable("the LLM inducer is not part of this version yet; use --inducer search") from None
    return LLMInducer.from_environment()


__all__ = ["Candidate", "Counterexample", "Feedback", "Inducer", "InducerUnavailable", "make_inducers", "llm_configured", "INDUCER_CHOICES"]
