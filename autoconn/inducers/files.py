"""An inducer that proposes programs a person wrote, in order: for comparing hand-written
attempts under the same checks, and for driving the repair loop deterministically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from autoconn.inducers.base import Candidate, Feedback, Proposal
from autoconn.task import Example, Task


class FilesInducer:
    name = "files"

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.sources = [(str(p), Path(p).read_text(encoding="utf-8")) for p in paths]

    def propose(self, task: Task, induction: Sequence[Example], feedback: Sequence[Feedback], *,
                budget_seconds: float, limit: int) -> Proposal:
        tried = {f.source for f in feedback}
        fresh = [Candidate(source=src, origin="files", summary=path) for path, src in self.sources if src not in tried]
        return Proposal(candidates=tuple(fresh[:limit]), stop_message="" if fresh else "every given program was tried")
