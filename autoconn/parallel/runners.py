"""Where the tasks of a batch run: in this process, in a local process pool, or on Ray.

Each runner takes the jobs and yields a `Finished` per task as it ends, in completion order.
Every worker process keeps one warm sandbox of its own for all the tasks it is given; a worker
that dies takes only its running task(s) with it, which are retried once and then recorded as
failed with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoconn.faults import forwarded_hooks
from autoconn.parallel.jobs import TaskJob, TaskResult, induce_one
from autoconn.settings import prefer_ray_token_auth

MAX_RETRIES = 1


@dataclass
class Finished:
    """One task's end: its result, or why no result came back (the worker died twice...)."""

    job: TaskJob
    result: TaskResult | None
    retries: int = 0
    reason: str | None = None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class InProcessRunner:
    """One task after another in this process, sharing one sandbox (the sequential bench)."""

    name = "sequential"

    def __init__(self, open_sandbox: Callable[[], Any], scratch: Path | None = None) -> None:
        self.open_sandbox, self.scratch = open_sandbox, scratch

    def run(self, jobs: list[TaskJob]) -> Iterator[Finished]:
        if not jobs:
            return
        sandbox = self.open_sandbox()
        try:
            for job in jobs:
                yield Finished(job, induce_one(job, sandbox, self.scratch))
        finally:
            sandbox.close()


_worker_sandbox: Any = None


def _sandbox_of_this_process(kind: str) -> Any:
    """The worker process's own warm sandbox, opened on its first task, closed when it exits."""
    global _worker_sandbox
    if _worker_sandbox is None:
        from multiprocessing import util

        from autoconn.sandbox import open_sandbox

        _worker_sandbox = open_sandbox(kind)
        util.Finalize(None, _worker_sandbox.close, exitpriority=10)
    return _worker_sandbox


def _pool_task(job: TaskJob, scratch: str | None) -> TaskResult:
    return induce_one(job, _sandbox_of_this_process(job.sandbox), Path(scratch) if scratch else None)


class PoolRunner:
    """A local process pool (forkserver: jax must not be forked after import), fed at most one
    task per worker at a time so that the tasks in it are the ones running. A worker that dies
    breaks the pool: the tasks running then (its own and the others') go to a new pool, once each."""

    name = "pool"

    def __init__(self, workers: int, scratch: Path | None = None) -> None:
        self.workers, self.scratch = workers, scratch

    def _pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("forkserver"))

    def run(self, jobs: list[TaskJob]) -> Iterator[Finished]:
        retries = {job.key: 0 for job in jobs}
        waiting = list(jobs)
        scratch = str(self.scratch) if self.scratch else None
        while waiting:
            pool = self._pool()
            running: dict[Future[TaskResult], TaskJob] = {}
            broken: list[TaskJob] = []
            dead = False
            try:
                while (waiting or running) and not dead:
                    while waiting and len(running) < self.workers:
                        try:
                            future = pool.submit(_pool_task, waiting[0], scratch)
                        except BrokenProcessPool:  # broke since the last wait: this job never ran
                            dead = True
                            break
                        running[future] = waiting.pop(0)
                    if dead:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        job = running.pop(future)
                        try:
                            yield Finished(job, future.result(), retries[job.key])
                        except BrokenProcessPool:
                            broken.append(job)
                            dead = True
                        except Exception as error:  # noqa: BLE001 - a bug in one task must not end the batch
                            yield Finished(job, None, retries[job.key], f"{type(error).__name__}: {error}")
                broken += list(running.values())  # a broken pool fails every future it holds
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            for job in broken:
                if retries[job.key] < MAX_RETRIES:
                    retries[job.key] += 1
                    waiting.insert(0, job)
                else:
                    yield Finished(job, None, retries[job.key], "its worker process died (retried once)")


class RayRunner:
    """The tasks as Ray tasks: each Ray worker process opens its own sandbox, induces into a
    private scratch library and returns the entry's files. A task whose worker dies (a system
    error, not an exception of the task) is submitted again once."""

    name = "ray"

    def __init__(self, address: str | None, cpus: int | None = None) -> None:
        self.address, self.cpus = address, cpus
        self._quiet = contextlib.ExitStack()

    def start(self) -> str:
        """Connects to (or starts) Ray; returns what it is running on, in words. Until stop(),
        stdout goes to stderr: Ray prints its workers' deaths there, and stdout is for results."""
        if self.address and self.address != "auto":
            _reachable(self.address)
        if self.address:
            prefer_ray_token_auth()  # a `ray start` cluster wants its token; read before ray is imported
        import ray

        self._quiet.enter_context(contextlib.redirect_stdout(sys.stderr))
        common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                                  "runtime_env": _runtime_env()}
        if self.address:
            ray.init(address=self.address, **common)
        else:
            ray.init(address="local", num_cpus=self.cpus or available_cores(), **common)  # new, even beside a cluster
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = int(ray.cluster_resources().get("CPU", 0))
        return f"Ray at {self.address or 'a local instance'}: {len(nodes)} node(s), {cpus} CPU(s)"

    def run(self, jobs: list[TaskJob]) -> Iterator[Finished]:
        import ray
        from ray.exceptions import RayTaskError

        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        scratch = None
        retries = {job.key: 0 for job in jobs}
        running = {remote.remote(job, scratch): job for job in jobs}
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            ref = done[0]
            job = running.pop(ref)
            try:
                yield Finished(job, ray.get(ref), retries[job.key])
            except RayTaskError as error:  # the task raised: retrying would raise again
                yield Finished(job, None, retries[job.key], task_error(error.cause))
            except ray.exceptions.RayError as error:  # the worker (or its node) died under it
                if retries[job.key] < MAX_RETRIES:
                    retries[job.key] += 1
                    running[remote.remote(job, scratch)] = job
                else:
                    yield Finished(job, None, retries[job.key], f"its Ray worker died twice ({type(error).__name__})")

    def stop(self) -> None:
        import ray

        try:
            ray.shutdown()
        finally:
            self._quiet.close()


def task_error(cause: BaseException) -> str:
    """One line for a Ray task that raised (the worker's traceback stays in Ray's logs)."""
    first = (str(cause).strip().splitlines() or [""])[0]
    if "No module named 'autoconn" in first:
        first += " (every Ray node needs this autoconn installed: pip install 'autoconn[ray]')"
    return f"{type(cause).__name__}: {first}"[:500]


def _ray_task(job: TaskJob, scratch: str | None) -> TaskResult:
    return induce_one(job, _sandbox_of_this_process(job.sandbox), Path(scratch or tempfile.gettempdir()))


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Ray waits forever for an address nobody answers at: refuse it after a short TCP probe."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as error:
        raise ConnectionError(f"nothing answers at {address} ({error}); give HOST:PORT of a running Ray head "
                              "(`ray start --head` prints it), 'auto', or a bare --ray for a local instance") from None


def _runtime_env() -> dict[str, Any]:
    """The driver's fault-injection switches reach the workers (tests only; empty otherwise)."""
    env = forwarded_hooks()
    return {"env_vars": env} if env else {}
