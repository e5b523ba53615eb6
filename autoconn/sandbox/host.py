"""Host side of the sandbox: talk to one warm worker, replace it when a job broke it.

A backend (process or docker) only knows how to start a worker and how to kill it; the
:class:`Sandbox` here owns the protocol: it sends a job, waits for the answer with a
wall-clock deadline, turns a dead or silent worker into a clean ``timeout``/``crash``/
``limit`` result, copies the weights out of the exchange directory, and starts a fresh
worker before the next job when needed.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import queue
import shutil
import stat
import tempfile
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from autoconn.sandbox.protocol import MAX_LINE_BYTES, MAX_SOURCE_BYTES, Job, JobResult, decode_line, encode_line

STARTUP_TIMEOUT = 240.0  # seconds for a worker to import jax/tracr and say "ready" (cold, busy machine)
GRACE_SECONDS = 10.0  # the worker's own timer fires at timeout_seconds; the host kills it at most this much later
MAX_WEIGHTS_BYTES = 512 * 1024 * 1024
STDERR_TAIL_BYTES = 16 * 1024


class SandboxUnavailable(RuntimeError):
    """The requested sandbox backend cannot run here; the message says why and what to do."""


class SandboxError(RuntimeError):
    """The sandbox infrastructure failed (not the candidate): a worker would not start."""


class WorkerGone(Exception):
    pass


class LineReader:
    """Splits a byte stream into protocol lines on a background thread; bounded memory:
    a line longer than MAX_LINE_BYTES ends the stream as corrupt."""

    def __init__(self) -> None:
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self._buffer = bytearray()
        self.corrupt = False
        self.stderr_tail: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0

    def feed_stdout(self, chunk: bytes) -> None:
        if self.corrupt:
            return
        self._buffer += chunk
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                break
            self.lines.put(bytes(self._buffer[:cut]))
            del self._buffer[: cut + 1]
        if len(self._buffer) > MAX_LINE_BYTES:
            self.corrupt = True
            self._buffer.clear()
            self.lines.put(None)

    def feed_stderr(self, chunk: bytes) -> None:
        self.stderr_tail.append(chunk)
        self._stderr_size += len(chunk)
        while self._stderr_size > STDERR_TAIL_BYTES and len(self.stderr_tail) > 1:
            self._stderr_size -= len(self.stderr_tail.popleft())

    def close(self) -> None:
        self.lines.put(None)

    def stderr_text(self, limit: int = 600) -> str:
        text = b"".join(self.stderr_tail).decode("utf-8", "replace")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        tail = "\n".join(lines[-6:])
        return tail[-limit:]


class WorkerHandle(ABC):
    """One live worker process (or container) and its streams."""

    def __init__(self) -> None:
        self.reader = LineReader()
        self.ready: dict[str, Any] = {}

    @abstractmethod
    def send(self, data: bytes) -> None: ...

    @abstractmethod
    def kill(self) -> None:
        """Stop it for good and free everything it held (idempotent)."""

    @abstractmethod
    def exit_reason(self) -> tuple[str, str]:
        """After it died: (stage, text), stage "limit" when a resource limit killed it, else "crash"."""

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        message = self.read_message(timeout)
        if message is None or message.get("type") != "ready":
            raise SandboxError(f"the sandbox worker did not start: {self.describe_death()}")
        self.ready = message
        return message

    def read_message(self, timeout: float) -> dict[str, Any] | None:
        """The next protocol object; None when the worker ended or `timeout` passed
        (``self.timed_out`` tells which)."""
        self.timed_out = False
        try:
            line = self.reader.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            self.timed_out = True
            return None
        if line is None:
            return None
        try:
            return decode_line(line)
        except ValueError:
            self.reader.corrupt = True
            return None

    def describe_death(self) -> str:
        stage, text = self.exit_reason()
        tail = self.reader.stderr_text()
        return text + (f"; last output: {tail}" if tail else "")


class Backend(ABC):
    """Starts workers of one kind."""

    name: str = "?"

    @abstractmethod
    def start_worker(self) -> WorkerHandle: ...

    @property
    @abstractmethod
    def exchange_dir(self) -> Path:
        """Host path of the directory the worker writes weights into."""

    def close(self) -> None:  # noqa: B027 - optional hook: a backend holding nothing closes nothing
        """Releases what the backend holds (a container, a temp dir); most hold nothing."""

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name}


_open_sandboxes: weakref.WeakSet[Sandbox] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for sandbox in list(_open_sandboxes):
        try:
            sandbox.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


class Sandbox:
    """A warm worker behind a backend. Use as a context manager (or call close())."""

    def __init__(self, backend: Backend, out_dir: str | os.PathLike[str] | None = None) -> None:
        self._backend = backend
        self._worker: WorkerHandle | None = None
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._own_out = out_dir is None
        self.out_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="autoconn-results-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.workers_started = 0
        self.closed = False
        _open_sandboxes.add(self)

    # -- public API ----------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._backend.name

    def describe(self) -> dict[str, Any]:
        info = self._backend.describe()
        if self._worker is not None:
            info["worker"] = self._worker.ready
        info["workers_started"] = self.workers_started
        return info

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def warm_up(self) -> None:
        """Start the worker now (otherwise the first job starts it)."""
        with self._lock:
            self._ensure_worker()

    def run_many(self, jobs: Iterable[Job]) -> list[JobResult]:
        return [self.run(job) for job in jobs]

    def run(self, job: Job) -> JobResult:
        if self.closed:
            raise SandboxError("this sandbox is closed")
        with self._lock:
            return self._run(job)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with self._lock:
            self._drop_worker()
            self._backend.close()
            if self._own_out:
                shutil.rmtree(self.out_dir, ignore_errors=True)
        _open_sandboxes.discard(self)

    # -- internals -----------------------------------------------------------------
    def _ensure_worker(self) -> WorkerHandle:
        if self._worker is None:
            self._start_worker()
        worker = self._worker
        assert worker is not None
        if not worker.ready:
            try:
                worker.wait_ready(STARTUP_TIMEOUT)
            except BaseException:
                worker.kill()
                self._worker = None
                raise
        return worker

    def _start_worker(self) -> None:
        """Starts a worker without waiting for it: it imports jax and warms up while the
        host does other things; the next job waits for its "ready"."""
        self._worker = self._backend.start_worker()
        self.workers_started += 1

    def recycle(self) -> None:
        """Replace the worker now (the next job runs on a fresh one): for callers about to run
        something they distrust more than usual."""
        with self._lock:
            self._drop_worker(replace=True)

    def _drop_worker(self, replace: bool = False) -> None:
        if self._worker is not None:
            worker, self._worker = self._worker, None
            try:
                worker.kill()
            except Exception as err:  # noqa: BLE001 - the backend could not free it: say so, do not hide it
                raise SandboxError(f"the sandbox worker could not be stopped: {err}") from err
        if replace and not self.closed:
            try:
                self._start_worker()
            except Exception:  # noqa: BLE001 - the next job retries and reports it
                self._worker = None

    def _run(self, job: Job) -> JobResult:
        started = time.monotonic()
        internal_id = f"j{next(self._counter)}"

        def finish(result: JobResult) -> JobResult:
            result.job_id = job.job_id
            result.seconds = round(time.monotonic() - started, 4)
            result.backend = self.backend
            return result

        if not isinstance(job.source, str) or len(job.source.encode("utf-8", "replace")) > MAX_SOURCE_BYTES:
            return finish(JobResult.failure(job.job_id, "screen",
                                            f"the source must be a string of at most {MAX_SOURCE_BYTES // 1000} KB of Python"))
        worker = self._ensure_worker()
        self._clear_exchange(internal_id)
        wire = job.to_json()
        wire["job_id"] = internal_id
        timeout = max(0.5, float(job.timeout_seconds))
        try:
            worker.send(encode_line(wire))
        except (OSError, WorkerGone):
            pass  # it died between jobs: read_message reports it below
        message = worker.read_message(timeout + min(GRACE_SECONDS, max(2.0, timeout / 2)))
        if message is None or message.get("type") != "result" or not isinstance(message.get("result"), dict):
            return finish(self._failed_worker(worker, job, timeout))
        try:
            result = JobResult.from_json(message["result"])
        except TypeError:
            return finish(self._failed_worker(worker, job, timeout, corrupt=True))
        if result.job_id != internal_id:
            return finish(self._failed_worker(worker, job, timeout, corrupt=True))
        if result.weights_path:
            result.weights_path = self._collect_weights(internal_id, job.job_id, result.weights_path)
        if message.get("recycle"):
            self._drop_worker(replace=True)
        return finish(result)

    def _failed_worker(self, worker: WorkerHandle, job: Job, timeout: float, corrupt: bool = False) -> JobResult:
        timed_out = getattr(worker, "timed_out", False)
        corrupt = corrupt or worker.reader.corrupt
        if timed_out:
            self._drop_worker(replace=True)
            return JobResult.failure(job.job_id, "timeout", f"the candidate ran longer than {timeout:g} s and did not stop; "
                                     "the sandbox was killed: look for endless loops or very large programs")
        if corrupt:
            self._drop_worker(replace=True)
            return JobResult.failure(job.job_id, "crash", "the sandbox worker's answer was corrupted (the candidate "
                                     "wrote to the protocol channel); the worker was replaced")
        # it ended: let the backend say how (signal, OOM, exit code)
        stage, text = worker.exit_reason()
        tail = worker.reader.stderr_text()
        self._drop_worker(replace=True)
        return JobResult.failure(job.job_id, stage, text + (f"; last output: {tail}" if tail and stage == "crash" else ""))

    def _clear_exchange(self, internal_id: str) -> None:
        exchange = self._backend.exchange_dir
        try:
            for entry in os.scandir(exchange):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
        except OSError:
            pass

    def _collect_weights(self, internal_id: str, job_id: str, relative: str) -> str | None:
        """Copies <exchange>/<id>/weights.npz to the host's results directory without
        following links the candidate might have planted; None if it is not a plain file."""
        if relative != f"{internal_id}/weights.npz":
            return None
        source_dir = self._backend.exchange_dir / internal_id
        try:
            dir_fd = os.open(source_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            fd = os.open("weights.npz", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
        except OSError:
            os.close(dir_fd)
            return None
        safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in job_id)[:80] or "job"
        target_dir = self.out_dir / f"{internal_id}-{safe_name}"
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / "weights.npz"
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_WEIGHTS_BYTES:
                return None
            with os.fdopen(fd, "rb", closefd=False) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        finally:
            os.close(fd)
            os.close(dir_fd)
        shutil.rmtree(source_dir, ignore_errors=True)
        return str(target)


def exit_text_for_signal(signum: int) -> tuple[str, str]:
    import signal

    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if signum == signal.SIGXCPU:
        return "limit", "the candidate exceeded the CPU time limit (SIGXCPU)"
    if signum == signal.SIGXFSZ:
        return "limit", "the candidate exceeded the file size limit (SIGXFSZ)"
    if signum == signal.SIGKILL:
        return "limit", "the sandbox worker was killed (SIGKILL): most likely the memory or CPU limit"
    if signum == signal.SIGABRT:
        return "limit", "the sandbox worker aborted (SIGABRT): most likely it ran out of memory under the address-space limit"
    if signum == signal.SIGSEGV:
        return "crash", "the sandbox worker crashed (SIGSEGV)"
    return "crash", f"the sandbox worker was stopped by {name}"


def iter_chunks(read: Callable[[int], bytes], size: int = 1 << 16) -> Iterable[bytes]:
    while True:
        try:
            chunk = read(size)
        except (OSError, ValueError):
            return
        if not chunk:
            return
        yield chunk
