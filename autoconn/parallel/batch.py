"""The driver of a batch: hands jobs to a runner, registers each verified entry in the one library
(under its lock), and records every finished task in the bench folder so a batch resumes.

runs/bench-ID/report.json is rewritten atomically after every task: the command (to resume it),
the library, one row per finished task, and which tasks an earlier session had already finished.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autoconn.bench import BenchRow
from autoconn.conn.artifact import Library, LibraryError
from autoconn.parallel.jobs import TaskResult
from autoconn.parallel.runners import Finished

REPORT = "report.json"


class BenchNotFound(LookupError):
    """`--resume BENCH_ID` names no bench folder (a usage error: exit 2)."""


def new_bench_id() -> str:
    return f"bench-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


@dataclass
class BenchFolder:
    """runs/bench-ID/ and its report; `report["tasks"]` maps a task file's stem to its row."""

    path: Path
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def bench_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, runs_dir: Path, command: dict[str, Any]) -> BenchFolder:
        folder = cls(Path(runs_dir) / new_bench_id())
        folder.path.mkdir(parents=True, exist_ok=False)
        folder.report = {"bench_id": folder.bench_id, "command": command, "started_at": _now(), "sessions": [],
                         "resumed": [], "tasks": {}}
        folder.save()
        return folder

    @classmethod
    def open(cls, runs_dir: Path, bench_id: str) -> BenchFolder:
        path = Path(runs_dir) / bench_id
        if not bench_id.startswith("bench-") or not (path / REPORT).is_file():
            known = sorted(p.name for p in Path(runs_dir).glob("bench-*") if (p / REPORT).is_file())
            raise BenchNotFound(f"no bench {bench_id!r} under {runs_dir}/ to resume (known: {', '.join(known[-5:]) or 'none'})")
        try:
            report = json.loads((path / REPORT).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise BenchNotFound(f"{path / REPORT} cannot be read ({error}); start a new bench") from None
        return cls(path, report)

    @property
    def finished(self) -> dict[str, dict[str, Any]]:
        tasks: dict[str, dict[str, Any]] = self.report.setdefault("tasks", {})
        return tasks

    def record(self, key: str, row: BenchRow) -> None:
        self.finished[key] = asdict(row)
        self.save()

    def save(self) -> None:
        """Atomic: a batch killed at any moment leaves the previous report whole."""
        self.report["updated_at"] = _now()
        handle, tmp = tempfile.mkstemp(dir=self.path, prefix=".report-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(json.dumps(self.report, indent=2, default=str) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path / REPORT)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def rows(self, order: Iterable[str]) -> list[BenchRow]:
        """Every finished task's row, in the given order of keys (unknown keys skipped)."""
        return [BenchRow(**self.finished[key]) for key in order if key in self.finished]


def frozen_snapshot(library: Path, folder: BenchFolder) -> str:
    """A copy of the library as it is now, for the LLM's demonstrations: a CoNN this batch
    registers must not become a demonstration for the next task (DESIGN.md, measuring fairly)."""
    target = folder.path / "demonstrations"
    if not target.exists():
        if library.is_dir():
            shutil.copytree(library, target, ignore=shutil.ignore_patterns(".*"))
        else:
            target.mkdir()
    return str(target)


def register(result: TaskResult, library: Library, force: bool, bench_id: str = "") -> tuple[str | None, str | None]:
    """The worker's entry into the library (Library.write: checked weights, the lock, the
    transaction). Returns (program path, None) or (None, why it was not registered). An entry
    this same bench registered before it was killed (and before its row was saved) is replaced."""
    from autoconn.conn.artifact import _program_source

    files = result.files
    try:
        meta = json.loads(files["conn.json"])
        meta["provenance"] = dict(meta.get("provenance") or {}, bench_id=bench_id or None)
        if bench_id and library.exists(meta["name"]):
            earlier = (library.get(meta["name"]).meta.get("provenance") or {}).get("bench_id")
            force = force or earlier == bench_id
        source = _program_source(files["program.py"].decode("utf-8"))
        graph = json.loads(files["graph.json"]) if "graph.json" in files else None
    except (KeyError, ValueError, LibraryError) as error:
        return None, f"the worker returned an incomplete entry ({type(error).__name__}: {error})"
    with tempfile.TemporaryDirectory(prefix="autoconn-register-") as tmp:
        weights = Path(tmp) / "weights.npz"
        weights.write_bytes(files.get("weights.npz", b""))
        try:
            entry = library.write(meta["name"], source, meta, weights_file=weights, force=force, graph=graph)
        except LibraryError as error:
            return None, str(error)
    return str(entry.program_path), None


def row_of(finished: Finished, library: Library, force: bool, bench_id: str = "") -> BenchRow:
    """The report row of a finished task, after registering its entry when it verified."""
    from autoconn.bench import usage_columns

    job, result = finished.job, finished.result
    if result is None or result.summary is None:
        why = finished.reason or (result.error if result else None) or "no result"
        return BenchRow(task=job.key, tier=job.tier, solved=False, seconds=result.seconds if result else 0.0, attempts=0,
                        layers=None, parameters=None, heldout_accuracy=None, reason=why, key=job.key,
                        worker=result.worker if result else "", retries=finished.retries)
    summary = result.summary
    solved = summary["status"] == "verified"
    registered, note = register(result, library, force, bench_id) if solved else (None, None)
    return BenchRow(task=summary["name"], tier=job.tier, solved=solved, seconds=float(summary["seconds"]),
                    attempts=int(summary["attempts"]), layers=summary["layers"], parameters=summary["parameters"],
                    heldout_accuracy=summary["heldout_accuracy"], reason=summary["reason"],
                    verified_length=summary["verified_length"], compiled_length=summary["compiled_max_seq_len"],
                    verified_how=summary["verified_how"], **usage_columns(summary["inducer_usage"]),
                    key=job.key, worker=result.worker, retries=finished.retries, registered=registered,
                    not_registered=note, run_id=summary.get("run_id"), statement=summary.get("statement"))


def run_batch(runner: Any, jobs: list, folder: BenchFolder, library: Library, *, force: bool,
              on_row: Callable[[BenchRow, int, int], None] = lambda row, done, total: None) -> list[BenchRow]:
    """Runs the jobs not yet finished in `folder` and returns every row, in job order. `on_row`
    is called per finished task with (row, finished so far, total)."""
    done_before = [job.key for job in jobs if job.key in folder.finished]
    todo = [job for job in jobs if job.key not in folder.finished]
    if done_before:
        folder.report["resumed"] = sorted(set(folder.report.get("resumed", [])) | set(done_before))
    session = {"started_at": _now(), "runner": runner.name, "workers": getattr(runner, "workers", None),
               "tasks": len(todo), "resumed": len(done_before)}
    folder.report.setdefault("sessions", []).append(session)
    folder.save()
    started = time.monotonic()
    count = len(done_before)
    for finished in runner.run(todo):
        row = row_of(finished, library, force, folder.bench_id)
        folder.record(finished.job.key, row)
        count += 1
        on_row(row, count, len(jobs))
    session["wall_seconds"] = round(time.monotonic() - started, 2)
    folder.report["finished_at"] = _now()
    folder.save()
    return folder.rows(job.key for job in jobs)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class BatchError(ValueError):
    """A batch that cannot start as asked (no ray installed, a bad --workers...): exit 2."""


@dataclass(frozen=True)
class BatchRequest:
    """Everything a batch was asked for; kept in report.json so `--resume BENCH_ID` repeats it."""

    files: tuple[str, ...]
    kind: str = "bench"  # bench | induce (only how results are printed differs)
    directory: str | None = None  # where tiers are read from (its README table)
    inducer: str = "search"
    sandbox: str = "auto"
    budget: float = 60.0
    max_attempts: int = 20
    oracle_file: str | None = None  # a FILE.py whose function named like each task is its oracle
    oracle_func: str | None = None  # ... or one function for every task
    sealed: bool = True
    llm: dict[str, Any] = field(default_factory=dict)
    out: str | None = None  # the library; None: the bench folder's own (conns/)
    demonstrations_from: str = "generated_conns"  # the library the LLM's demonstrations come from (frozen)
    force: bool = False
    runs_dir: str = "runs"
    workers: int = 1
    ray: str | None = None  # "local", "auto" or an address


def make_runner(request: BatchRequest) -> Any:
    """The runner the request asks for (Ray is imported only here, and only when asked for)."""
    from autoconn.parallel.runners import InProcessRunner, PoolRunner, RayRunner

    if request.workers < 1:
        raise BatchError(f"--workers {request.workers}: give at least 1")
    if request.ray:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise BatchError("--ray needs Ray: pip install 'autoconn[ray]' (ray 2.60.0)")
        return RayRunner(None if request.ray == "local" else request.ray, cpus=request.workers)
    if request.workers == 1:
        from autoconn.sandbox import open_sandbox

        return InProcessRunner(lambda: open_sandbox(request.sandbox))
    return PoolRunner(request.workers)


def start_batch(request: BatchRequest, *, resume: str | None = None,
                on_start: Callable[[BenchFolder, str], None] = lambda folder, where: None,
                on_row: Callable[[BenchRow, int, int], None] = lambda row, done, total: None
                ) -> tuple[BenchFolder, list[BenchRow]]:
    """Creates (or reopens, with `resume`) the bench folder and runs the tasks not finished yet.
    Nothing is written before the library is known writable and the runner has started."""
    from autoconn.bench import plan_jobs, read_tiers

    reopened = BenchFolder.open(Path(request.runs_dir), resume) if resume else None
    if request.out:
        Library(request.out).check_writable()
    Library(request.runs_dir).check_writable()
    runner = make_runner(request)
    try:
        where = _start(runner, request)
        folder = reopened or BenchFolder.create(Path(request.runs_dir), asdict(request))
        library = Library(request.out or folder.path / "conns")
        folder.report["library"], folder.report["runner"] = str(library.root), where
        llm = dict(request.llm)
        if request.inducer != "search":
            llm["library_dir"] = frozen_snapshot(Path(request.demonstrations_from), folder)
        tiers = read_tiers(Path(request.directory)) if request.directory else {}
        jobs = plan_jobs([Path(f) for f in request.files], tiers=tiers, inducer=request.inducer, sandbox=request.sandbox,
                         budget=request.budget, max_attempts=request.max_attempts,
                         oracle_file=Path(request.oracle_file) if request.oracle_file else None,
                         oracle_func=request.oracle_func, sealed=request.sealed, llm_options=llm,
                         runs_dir=(folder.path / "runs").resolve())
        on_start(folder, where)
        rows = run_batch(runner, jobs, folder, library, force=request.force or request.out is None, on_row=on_row)
    finally:
        if hasattr(runner, "stop"):
            runner.stop()
    return folder, rows


def _start(runner: Any, request: BatchRequest) -> str:
    """Starts the runner; a Ray cluster that cannot be reached is a usage error, said in one line."""
    if not hasattr(runner, "start"):
        return f"{request.workers} local worker process(es)" if request.workers > 1 else "this process"
    try:
        return str(runner.start())
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise BatchError(f"--ray {request.ray}: Ray could not start or be reached ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''})") from None


def request_of(folder: BenchFolder, **changes: Any) -> BatchRequest:
    """The request saved in a bench folder, with `changes` (e.g. other --workers) applied."""
    saved = dict(folder.report.get("command") or {})
    saved["files"] = tuple(saved.get("files") or ())
    saved.update({k: v for k, v in changes.items() if v is not None})
    known = set(BatchRequest.__dataclass_fields__)
    return BatchRequest(**{k: v for k, v in saved.items() if k in known})
