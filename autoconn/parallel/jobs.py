"""One task of a batch, as a worker sees it: the job it is handed and the result it hands back.

A job carries the task file's text (and its oracle file's), so a worker on another machine needs
no shared disk; a result carries the verified entry's files, so only the driver ever writes the
user's library (under its lock). `induce_one` is the single place a batch starts a run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoconn.faults import kill_at_task

ENTRY_FILES = ("program.py", "conn.json", "weights.npz", "graph.json")


@dataclass(frozen=True)
class TaskJob:
    """Everything one induction of a batch needs, picklable and self-contained."""

    key: str  # the task file's stem: the bench report's key
    tier: str
    task_file: str  # where the driver read it (used as is when it exists on the worker's machine)
    task_text: str
    inducer: str = "search"
    sandbox: str = "auto"
    budget: float = 60.0
    max_attempts: int = 20
    oracle_file: str | None = None
    oracle_func: str | None = None
    oracle_text: str | None = None
    sealed: bool = True  # False = --no-sealed
    llm: dict[str, Any] = field(default_factory=dict)
    runs_dir: str | None = None  # run logs (default: the worker's scratch folder)


@dataclass
class TaskResult:
    """What a worker returns: the run summary (the `induce --json` object), the entry's files when
    it verified, and who ran it. `error`: the task could not start (bad file, bad oracle)."""

    key: str
    tier: str
    summary: dict[str, Any] | None
    files: dict[str, bytes]
    worker: str
    seconds: float
    error: str | None = None


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def local_copy(original: str, text: str, scratch: Path, name: str) -> str:
    """`original` when this machine has that file with the same text (or the driver could not read
    it: no text), else a copy in `scratch`."""
    path = Path(original)
    try:
        if path.is_file() and (not text or path.read_text(encoding="utf-8") == text):
            return original
    except (OSError, UnicodeDecodeError):
        return original
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    copy = scratch / f"{digest}-{name}"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text, encoding="utf-8")
    return str(copy)


def induce_one(job: TaskJob, sandbox: Any, scratch: Path | None = None) -> TaskResult:
    """Induces one task into a private scratch library with an open (shared, not closed) sandbox
    and returns the summary and the entry's files. Known input errors become `error`, not raises."""
    from autoconn.api import RequestError, RunRequest, prepare_run, start_run
    from autoconn.conn.artifact import LibraryError
    from autoconn.fusion.metadata import FusionSpecError
    from autoconn.inducers import InducerUnavailable
    from autoconn.oracle import OracleError
    from autoconn.task import TaskError

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"{job.key}-", dir=scratch))

    def failed(why: str) -> TaskResult:
        return TaskResult(job.key, job.tier, None, {}, worker_name(), time.monotonic() - started, error=why)

    library_dir = work / "conns"
    task_path = local_copy(job.task_file, job.task_text, work / "input", f"{job.key}.jsonl")
    oracle = None
    if job.oracle_file and job.oracle_func and job.oracle_text is not None:
        oracle = f"{local_copy(job.oracle_file, job.oracle_text, work / 'input', Path(job.oracle_file).name)}:{job.oracle_func}"
    request = RunRequest(task_path=task_path, library_dir=str(library_dir), runs_dir=job.runs_dir or str(work / "runs"),
                         inducer=job.inducer, budget_seconds=job.budget, max_attempts=job.max_attempts, force=True,
                         oracle=oracle, sealed=job.sealed, llm=dict(job.llm))
    try:
        prepared = prepare_run(request)
    except (TaskError, OracleError, RequestError, FusionSpecError, InducerUnavailable) as error:
        return failed(f"bad task file: {error}")
    try:
        summary = start_run(prepared, sandbox=sandbox, on_event=lambda kind, data: kill_at_task(job.key)).summary()
    except (TaskError, OracleError, LibraryError, InducerUnavailable) as error:
        return failed(f"{type(error).__name__}: {error}")
    task_name = prepared.task.name
    files: dict[str, bytes] = {}
    if summary["status"] == "verified":
        entry = library_dir / task_name
        files = {name: (entry / name).read_bytes() for name in ENTRY_FILES if (entry / name).is_file()}
    if job.runs_dir:  # the run log lives elsewhere: nothing here is needed any more
        shutil.rmtree(work, ignore_errors=True)
    return TaskResult(job.key, job.tier, summary, files, worker_name(), time.monotonic() - started)
