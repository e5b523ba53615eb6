"""Docker backend: the worker in a locked-down container, kept warm across jobs.

The container runs ``python -m autoconn.sandbox.worker`` as its entrypoint with stdin
open; the host attaches one socket (stdin + stdout + stderr, multiplexed frames) before
starting it and streams jobs and results over it - no ``docker exec`` per job, no
container start per job. Limits: ``--network none``, read-only root, 64 MB tmpfs /tmp,
3 GB memory (no swap), CPU quota, 128 pids, all capabilities dropped, no-new-privileges,
a non-root user, logging driver "none" (a candidate printing forever fills nothing), an
exchange dir bind-mounted at /exchange for weights. Killed and removed on timeout or
close; containers are labelled so stale ones from dead sessions are removed.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from autoconn.sandbox.host import Backend, SandboxUnavailable, WorkerHandle


def image_name() -> str:
    """The sandbox image (AUTOCONN_SANDBOX_IMAGE, read now, not at import)."""
    from autoconn.settings import load

    return load().sandbox_image


LABEL = "autoconn.sandbox"
SANDBOX_UID = 10001
MEMORY = "3g"
PIDS_LIMIT = 128
TMPFS = "rw,nosuid,nodev,noexec,size=64m,mode=1777"
FILE_SIZE_BYTES = 512 * 1024**2
LIFETIME_CPU_SECONDS = 4 * 3600


def _client(timeout: int = 30) -> Any:
    import docker

    return docker.from_env(timeout=timeout)


def docker_status(image: str | None = None) -> dict[str, Any]:
    """{usable, engine, image_present, reason}: can the docker backend run here right now?"""
    image = image or image_name()
    status: dict[str, Any] = {"usable": False, "engine": False, "image": image, "image_present": False, "reason": ""}
    try:
        import docker  # noqa: F401
    except ImportError:
        status["reason"] = "the docker Python package is not installed"
        return status
    try:
        client = _client(timeout=5)
        client.ping()
        status["engine"] = True
        status["server_version"] = client.version().get("Version")
    except Exception as err:  # noqa: BLE001 - any failure means "no engine"
        status["reason"] = f"no Docker engine answers ({type(err).__name__}); start dockerd or run .ci/docker-setup.sh"
        return status
    try:
        found = client.images.get(image)
        status["image_present"] = True
        status["image_id"] = found.id[:19]
        status["image_hash"] = found.labels.get(f"{LABEL}.hash")
    except Exception:  # noqa: BLE001
        status["reason"] = f"the image {image} is missing: build it with `autoconn sandbox build` (or .ci/docker-setup.sh)"
        return status
    finally:
        client.close()
    status["usable"] = True
    status["reason"] = "engine reachable, image present"
    current = _image_current(found)
    status["image_current"] = current
    if current is False:
        status["reason"] += ("; but it was built from other sources than this checkout: rebuild it "
                             "(`autoconn sandbox build` or .ci/docker-setup.sh)")
    return status


def _image_current(image: Any) -> bool | None:
    """Whether the image was built from this checkout's worker sources (None: cannot tell)."""
    try:
        from autoconn.sandbox.image import source_hash

        label = image.labels.get(f"{LABEL}.hash")
        base = image.labels.get(f"{LABEL}.base")
        if not label or not base:
            return None
        client = _client(timeout=5)
        try:
            base_id = client.images.get(base).id
        finally:
            client.close()
        return source_hash(base_id) == label
    except Exception:  # noqa: BLE001 - not a source checkout, base gone...
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_stale_containers(client: Any) -> int:
    """Removes sandbox containers left by sessions of this host whose process is gone."""
    removed = 0
    host = socket.gethostname()
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        labels = container.labels
        try:
            owner = int(labels.get(f"{LABEL}.pid", "0"))
        except ValueError:
            owner = 0
        if labels.get(f"{LABEL}.host") == host and owner and _pid_alive(owner):
            continue
        remove_container(client, container.id)
        removed += 1
    return removed


class DockerWorker(WorkerHandle):
    def __init__(self, client: Any, container: Any, sock: Any) -> None:
        super().__init__()
        self.client = client
        self.container = container
        self.sock = sock
        self.raw = getattr(sock, "_sock", sock)
        self.raw.settimeout(None)  # an idle worker between jobs is normal: never time the stream out
        self._killed = False
        self._oom: bool | None = None
        self._exit_code: int | None = None
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _recv_exact(self, size: int) -> bytes | None:
        data = bytearray()
        while len(data) < size:
            try:
                chunk = self.raw.recv(size - len(data))
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def _pump(self) -> None:
        """Demultiplexes docker's attach stream: 8-byte header (stream, 0, 0, 0, size)."""
        try:
            while True:
                header = self._recv_exact(8)
                if header is None:
                    break
                kind, size = header[0], struct.unpack(">I", header[4:])[0]
                payload = self._recv_exact(size) if size else b""
                if payload is None:
                    break
                if kind == 1:
                    self.reader.feed_stdout(payload)
                else:
                    self.reader.feed_stderr(payload)
        finally:
            self.reader.close()

    def send(self, data: bytes) -> None:
        self.raw.sendall(data)

    def _inspect(self) -> None:
        if self._exit_code is not None:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.container.reload()
            except Exception:  # noqa: BLE001
                return
            state = self.container.attrs.get("State", {})
            if not state.get("Running"):
                self._exit_code = int(state.get("ExitCode", -1))
                self._oom = bool(state.get("OOMKilled"))
                return
            time.sleep(0.1)

    def exit_reason(self) -> tuple[str, str]:
        self._inspect()
        if self._oom:
            return "limit", f"the candidate exceeded the sandbox memory limit ({MEMORY}) and was killed"
        code = self._exit_code
        if code is None:
            return "crash", "the sandbox container stopped answering"
        if code == 137:
            return "limit", "the sandbox container was killed (SIGKILL): most likely the memory or CPU limit"
        if 128 < code < 128 + 65:
            from autoconn.sandbox.host import exit_text_for_signal

            return exit_text_for_signal(code - 128)
        return "crash", f"the sandbox worker exited with code {code}"

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        try:
            self.raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except Exception:  # noqa: BLE001
            pass
        remove_container(self.client, self.container.id)


def remove_container(client: Any, container_id: str, timeout: float = 60.0) -> None:
    """SIGKILL + remove, then wait until the engine no longer knows the container. Only "not
    found" counts as done; anything else is retried until `timeout`, then raised (a container
    left behind holds its pids and memory and breaks the next workers)."""
    from docker.errors import APIError, NotFound

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client.api.remove_container(container_id, force=True)
        except NotFound:
            return
        except APIError as err:  # e.g. "removal already in progress": wait and look again
            last = err
        try:
            client.api.inspect_container(container_id)
        except NotFound:
            return
        time.sleep(0.2)
    raise RuntimeError(f"sandbox container {container_id[:12]} could not be removed within {timeout:g} s: {last}")


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, *, image: str | None = None, cpus: float | None = None, memory: str = MEMORY) -> None:
        image = image or image_name()
        status = docker_status(image)
        if not status["usable"]:
            raise SandboxUnavailable(f"docker sandbox unavailable: {status['reason']}")
        self.client = _client(timeout=120)
        security = " ".join(self.client.info().get("SecurityOptions") or [])
        if "seccomp" not in security:
            self.client.close()
            raise SandboxUnavailable("docker sandbox unavailable: this engine runs containers without seccomp "
                                     f"(security options: {security or 'none'}); use --sandbox process")
        self.image = image
        self.memory = memory
        self.cpus = cpus if cpus is not None else 1.0  # measured: same speed as 2 CPUs here, and the host keeps a core
        self.session = uuid.uuid4().hex[:12]
        remove_stale_containers(self.client)
        self._base = Path(tempfile.mkdtemp(prefix="autoconn-docker-"))
        self._exchange = self._base / "exchange"
        self._exchange.mkdir()
        try:
            os.chown(self._exchange, SANDBOX_UID, SANDBOX_UID)
        except PermissionError:
            os.chmod(self._exchange, 0o777)
        os.chmod(self._base, 0o711)

    @property
    def exchange_dir(self) -> Path:
        return self._exchange

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "image": self.image, "network": "none", "memory": self.memory, "cpus": self.cpus,
                "seccomp": "engine default profile", "no_new_privileges": True,
                "pids_limit": PIDS_LIMIT, "user": SANDBOX_UID, "read_only_root": True, "session": self.session}

    def start_worker(self) -> WorkerHandle:
        from docker.types import LogConfig, Ulimit

        container = self.client.containers.create(
            self.image,
            stdin_open=True,
            tty=False,
            detach=True,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": TMPFS},
            mem_limit=self.memory,
            memswap_limit=self.memory,
            nano_cpus=int(self.cpus * 1e9),
            pids_limit=PIDS_LIMIT,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],  # and the engine's default seccomp profile (checked in __init__)
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            ipc_mode="private",
            volumes={str(self._exchange): {"bind": "/exchange", "mode": "rw"}},
            ulimits=[Ulimit(name="nofile", soft=1024, hard=1024), Ulimit(name="core", soft=0, hard=0),
                     Ulimit(name="fsize", soft=FILE_SIZE_BYTES, hard=FILE_SIZE_BYTES),
                     Ulimit(name="cpu", soft=LIFETIME_CPU_SECONDS, hard=LIFETIME_CPU_SECONDS)],
            log_config=LogConfig(type="none"),
            environment={"JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"},
            labels={LABEL: "1", f"{LABEL}.session": self.session, f"{LABEL}.pid": str(os.getpid()),
                    f"{LABEL}.host": socket.gethostname()},
        )
        try:
            sock = self.client.api.attach_socket(container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            container.start()
        except Exception:
            remove_container(self.client, container.id)
            raise
        return DockerWorker(self.client, container, sock)

    def close(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}.session={self.session}"}):
            remove_container(self.client, container.id)
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass
        shutil.rmtree(self._base, ignore_errors=True)
