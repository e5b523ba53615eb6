"""Fixtures for the sandbox suite: one warm sandbox per backend for the whole session,
a canary file, a TCP listener, and helpers to check the host is unharmed."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoconn.conn.compile import default_settings
from autoconn.sandbox import Job, JobResult, open_sandbox
from autoconn.sandbox.docker_backend import LABEL, docker_status

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

REVERSE = """\
from tracr.rasp import rasp
length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE))
opp = rasp.SequenceMap(lambda n, i: n - i - 1, length, rasp.indices)
program = rasp.Aggregate(rasp.Select(rasp.indices, opp, rasp.Comparison.EQ), rasp.tokens)
"""
VOCAB = ["a", "b", "c"]
MAX_LEN = 5
INPUTS = [["a", "b", "c"], ["c", "a"], ["b"], ["a", "a", "b", "c", "c"]]


def make_job(source: str, job_id: str = "job", *, inputs: list | None = None, vocab: list | None = None,
             max_len: int = MAX_LEN, timeout: float = 60.0, screen: bool = True, want_weights: bool = True) -> Job:
    return Job(job_id=job_id, source=source, vocab=list(vocab or VOCAB), settings=default_settings(max_len).to_json(),
               inputs=[list(x) for x in (inputs if inputs is not None else INPUTS)], want_weights=want_weights,
               timeout_seconds=timeout, screen=screen)


def assert_good_run(sandbox: Any) -> JobResult:
    """The next job on the same sandbox still works."""
    result = sandbox.run(make_job(REVERSE, "after"))
    assert result.ok, (result.stage, result.error)
    assert result.model_outputs == [list(reversed(x)) for x in INPUTS]
    return result


_docker_checked: dict[str, Any] = {}


def _docker_or_fail() -> None:
    """Checked once per session (the image hash covers sources other people edit too)."""
    if "status" not in _docker_checked:
        _docker_checked["status"] = docker_status()
    status = _docker_checked["status"]
    if not status["usable"] or status.get("image_current") is False:
        message = f"docker sandbox unusable: {status['reason']}"
        if IN_CI:
            pytest.fail(message + " (CI=true: the docker tests must run; .ci/docker-setup.sh prepares the engine and image)")
        pytest.skip(message)


_opened: dict[str, Any] = {}


def get_sandbox(kind: str) -> Any:
    if kind == "docker":
        _docker_or_fail()
    if kind not in _opened:
        if kind == "process-unshare":
            sandbox = open_sandbox("process", use_bwrap=False)
        else:
            sandbox = open_sandbox(kind)
        sandbox.warm_up()
        _opened[kind] = sandbox
    return _opened[kind]


@pytest.fixture(scope="session", autouse=True)
def _close_sandboxes() -> Iterator[None]:
    yield
    for sandbox in _opened.values():
        sandbox.close()
    _opened.clear()


BACKENDS = [pytest.param("process", id="process"), pytest.param("docker", id="docker", marks=pytest.mark.docker)]


@pytest.fixture(params=BACKENDS)
def sandbox(request: pytest.FixtureRequest) -> Any:
    return get_sandbox(request.param)


@pytest.fixture
def canary(tmp_path: Path) -> dict[str, Any]:
    """A file the test owns, outside any sandbox, with a secret in it."""
    directory = tmp_path / "private"
    directory.mkdir(mode=0o700)
    secret = "CANARY-" + secrets.token_hex(12)
    path = directory / "canary.txt"
    path.write_text(secret)
    os.chmod(path, 0o600)
    stat = path.stat()
    return {"path": str(path), "dir": str(directory), "secret": secret, "mtime": stat.st_mtime_ns,
            "atime": stat.st_atime_ns, "marker": str(directory / "marker")}


def canary_intact(canary: dict[str, Any]) -> None:
    path = Path(canary["path"])
    assert path.read_text() == canary["secret"]
    assert path.stat().st_mtime_ns == canary["mtime"]
    assert sorted(os.listdir(canary["dir"])) == ["canary.txt"], "something was written next to the canary"


class Listener:
    """A TCP server on the host that records every connection that reaches it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections: list[Any] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            self.connections.append(addr)
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def host_addresses() -> list[str]:
    """127.0.0.1, the docker bridge gateway and this host's outward address."""
    found = ["127.0.0.1", "172.17.0.1"]
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect(("10.255.255.255", 1))
        found.append(probe.getsockname()[0])
        probe.close()
    except OSError:
        pass
    return found


def leftovers(sandbox: Any) -> list[str]:
    """Processes or containers of this sandbox other than its current worker."""
    backend = sandbox._backend
    current = sandbox._worker
    if sandbox.backend == "docker":
        import docker

        client = docker.from_env()
        try:
            found = client.containers.list(all=True, filters={"label": f"{LABEL}.session={backend.session}"})
            keep = {current.container.id} if current is not None else set()
            return [c.name for c in found if c.id not in keep]
        finally:
            client.close()
    session = backend.session
    keep_tag = current.tag if current is not None else None
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:
            continue
        for entry in environ:
            if entry.startswith(b"AUTOCONN_SANDBOX_TAG=" + session.encode()):
                tag = entry.split(b"=", 1)[1].decode()
                if tag != keep_tag:
                    found.append(f"{pid} ({tag})")
    return found
