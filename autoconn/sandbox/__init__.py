"""Model-written RASP code runs only in isolation.

    from autoconn.sandbox import Job, open_sandbox
    with open_sandbox("auto") as sandbox:          # "docker" | "process" | "auto"
        result = sandbox.run(Job(job_id="c1", source=src, vocab=["a", "b"],
                                 settings=default_settings(8).to_json(), inputs=[["a", "b"]]))

A Sandbox keeps one worker warm (jax and tracr imported, compilation caches hot) and
replaces it transparently after a job that crashed, timed out, hit a limit or tampered
with the interpreter. ``sandbox_status()`` says which backend "auto" would pick and why.

Weights: ``JobResult.weights_path`` is a host file under the sandbox's results directory,
which is deleted by ``close()`` unless ``open_sandbox(out_dir=...)`` names one to keep.

Only :mod:`autoconn.sandbox.worker` ever executes candidate code, and only inside a
sandboxed worker process.
"""

from __future__ import annotations

import os
from typing import Any

from autoconn.sandbox.host import Sandbox, SandboxError, SandboxUnavailable
from autoconn.sandbox.protocol import STAGES, Job, JobResult
from autoconn.sandbox.screen import screen_error

__all__ = [
    "Job", "JobResult", "STAGES", "Sandbox", "SandboxError", "SandboxUnavailable",
    "open_sandbox", "sandbox_status", "build_image", "screen_error",
]

KINDS = ("auto", "docker", "process")


def open_sandbox(kind: str = "auto", *, out_dir: str | os.PathLike[str] | None = None, log: Any = None,
                 **options: Any) -> Sandbox:
    """A ready Sandbox of the given kind (auto: docker when the engine answers and the image
    is there, else process). Raises SandboxUnavailable when `kind` cannot run here.

    options: docker -> image=, cpus=, memory=; process -> use_bwrap=, cache=."""
    if kind not in KINDS:
        raise SandboxUnavailable(f"unknown sandbox kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "auto":
        from autoconn.sandbox.docker_backend import docker_status

        kind = "docker" if _docker_preferred(docker_status()) else "process"
    if kind == "docker":
        from autoconn.sandbox.docker_backend import DockerBackend

        return Sandbox(DockerBackend(**options), out_dir=out_dir)
    from autoconn.sandbox.process import ProcessBackend

    return Sandbox(ProcessBackend(log=log, **options), out_dir=out_dir)


def sandbox_status() -> dict[str, Any]:
    """Which backend "auto" would use and why: engine reachable? image present? namespaces allowed?"""
    from autoconn.sandbox.docker_backend import docker_status
    from autoconn.sandbox.process import isolation, jax_cache_dir

    docker = docker_status()
    process = isolation()
    cache = jax_cache_dir()
    process["jax_cache"] = {"path": str(cache), "warmed": (cache / ".warmed").exists()}
    auto = "docker" if _docker_preferred(docker) else "process"
    reason = ("the Docker engine answers and the sandbox image is present and current" if auto == "docker"
              else f"docker is not used ({docker['reason']}); the process backend runs with: network "
                   f"{process['network']}, file system {process['filesystem']}")
    return {"auto": auto, "reason": reason, "docker": docker, "process": process}


def _docker_preferred(status: dict[str, Any]) -> bool:
    """auto takes docker when it is usable and its image was built from these sources (a
    stale image would run an older worker: rebuild it, or ask for kind="docker" explicitly)."""
    return bool(status["usable"]) and status.get("image_current") is not False


def build_image(base: str | None = None, **kwargs: Any) -> str:
    """Builds the sandbox image (see autoconn.sandbox.image.build_image)."""
    from autoconn.sandbox.image import build_image as _build

    return _build(base=base, **kwargs)
