"""A run's folder, ``runs/<run-id>/``: the checkpoint database, every candidate's source, and a
readable log (one JSON object per line) of what was tried, what happened and the feedback,
so a person can see why induction went as it did."""

from __future__ import annotations

import datetime as _dt
import json
import secrets
from pathlib import Path
from typing import Any

CHECKPOINT_FILE = "checkpoint.sqlite"
LOG_FILE = "log.jsonl"
SUMMARY_FILE = "summary.json"


def new_run_id(name: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{name[:24]}-{secrets.token_hex(2)}"


class RunLog:
    def __init__(self, runs_dir: str | Path, run_id: str) -> None:
        self.dir = Path(runs_dir) / run_id
        self.run_id = run_id

    @property
    def checkpoint_path(self) -> Path:
        return self.dir / CHECKPOINT_FILE

    @property
    def log_path(self) -> Path:
        return self.dir / LOG_FILE

    def create(self) -> None:
        (self.dir / "candidates").mkdir(parents=True, exist_ok=True)

    def exists(self) -> bool:
        return self.checkpoint_path.exists()

    def event(self, kind: str, **data: Any) -> None:
        record = {"time": _dt.datetime.now().isoformat(timespec="seconds"), "event": kind, **data}
        with self.log_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, default=str) + "\n")

    def save_candidate(self, attempt: int, source: str) -> str:
        path = self.dir / "candidates" / f"{attempt:03d}.py"
        path.write_text(source, encoding="utf-8")
        return str(path)

    def save_transcript(self, inducer: str, call: int, transcript: Any) -> str:
        """An inducer's own record of one call (the LLM's messages and raw replies), for a person
        asking why the model wrote what it wrote."""
        path = self.dir / inducer / f"{call:03d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(transcript, indent=2, default=str) + "\n", encoding="utf-8")
        return str(path)

    def write_summary(self, summary: dict[str, Any]) -> None:
        (self.dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")

    def events(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
