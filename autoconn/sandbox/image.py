"""Build the sandbox image with no registry inside the build.

1. wheels for the worker's runtime deps (tracr-pypi, jax, jaxlib, dm-haiku, numpy, at the
   versions installed on the host) are fetched on the host with ``pip download`` for
   CPython 3.11 / manylinux x86_64 (cached under sandbox/wheels/);
2. the autoconn wheel is built on the host (``pip wheel --no-deps``);
3. ``docker build`` runs sandbox/Dockerfile with ``--network none`` from a base image:
   ``python:3.11-slim`` if present or pullable, else the local ``autoconn-base:bookworm``
   made by sandbox/make-base.sh (debootstrap), which this module can run itself.

The image carries a label with a hash of everything that decides it (Dockerfile,
requirements, the worker's modules, the base image id): a rebuild with nothing changed
returns at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from autoconn.sandbox.docker_backend import LABEL, _client, image_name

RUNTIME_PACKAGES = ("tracr-pypi", "jax", "jaxlib", "dm-haiku", "numpy")
LOCAL_BASE = "autoconn-base:bookworm"
HUB_BASE = "python:3.11-slim"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")
# The modules the worker imports inside the image: the image is rebuilt when one changes.
WORKER_SOURCES = ("autoconn/__init__.py", "autoconn/task.py", "autoconn/conn", "autoconn/sandbox/__init__.py",
                  "autoconn/sandbox/host.py", "autoconn/sandbox/protocol.py", "autoconn/sandbox/screen.py",
                  "autoconn/sandbox/worker.py", "autoconn/sandbox/fastinit.py",
                  "autoconn/sandbox/seccomp.py")


class ImageBuildError(RuntimeError):
    pass


def repo_root() -> Path:
    import autoconn

    return Path(autoconn.__file__).resolve().parent.parent


def sandbox_dir() -> Path:
    path = repo_root() / "sandbox"
    if not (path / "Dockerfile").exists():
        raise ImageBuildError(f"{path / 'Dockerfile'} not found: build the image from a source checkout of AutoCoNN")
    return path


def requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in RUNTIME_PACKAGES]


def _run(command: list[str], log: Callable[[str], None], what: str) -> None:
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = done.stdout.decode(errors="replace").strip().splitlines()[-15:]
        raise ImageBuildError(f"{what} failed (exit {done.returncode}):\n" + "\n".join(tail))


def download_wheels(target: Path, log: Callable[[str], None]) -> Path:
    """Wheels for the runtime deps, CPython 3.11 manylinux; skipped when already complete."""
    target.mkdir(parents=True, exist_ok=True)
    reqs = requirements()
    stamp = target / "requirements.txt"
    if stamp.exists() and stamp.read_text().split() == reqs and any(target.glob("jaxlib-*.whl")):
        return target
    log(f"downloading wheels for {' '.join(reqs)} into {target}")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", str(target),
               "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    _run(command + reqs, log, "pip download")
    stamp.write_text("\n".join(reqs) + "\n")
    return target


def build_app_wheel(target: Path, log: Callable[[str], None]) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    log("building the autoconn wheel")
    with tempfile.TemporaryDirectory(prefix="autoconn-wheel-") as scratch:
        # build from a copy so the checkout gets no build/ or egg-info litter
        root = repo_root()
        src = Path(scratch) / "src"
        top_level = {".git", "sandbox", "runs", "generated_conns", "build", "dist", ".venv", ".cache", "tests", "benchmarks",
                     "rule_examples", ".pytest_cache"}

        def ignore(directory: str, names: list[str]) -> set[str]:
            skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
            if Path(directory) == root:
                skip |= top_level & set(names)
            return skip

        shutil.copytree(root, src, ignore=ignore)
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check", "-w", str(target),
              str(src)], log, "pip wheel autoconn")
    return target


def source_hash(base_id: str) -> str:
    digest = hashlib.sha256()
    root = repo_root()
    digest.update((sandbox_dir() / "Dockerfile").read_bytes())
    digest.update("\n".join(requirements()).encode())
    digest.update(base_id.encode())
    for item in WORKER_SOURCES:
        path = root / item
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:24]


def _image(client: Any, name: str) -> Any | None:
    try:
        return client.images.get(name)
    except Exception:  # noqa: BLE001 - not found
        return None


def choose_base(client: Any, log: Callable[[str], None], make_local: bool = True) -> str:
    """python:3.11-slim if present or pullable, else the local debootstrap base (made if missing)."""
    for name in (HUB_BASE, LOCAL_BASE):
        if _image(client, name) is not None:
            return name
    try:
        log(f"pulling {HUB_BASE}")
        client.images.pull(HUB_BASE)
        return HUB_BASE
    except Exception as err:  # noqa: BLE001 - no Docker Hub here
        log(f"cannot pull {HUB_BASE} ({type(err).__name__}); using a local debootstrap base")
    if not make_local:
        raise ImageBuildError(f"no base image: {HUB_BASE} cannot be pulled and {LOCAL_BASE} is missing "
                              "(run sandbox/make-base.sh)")
    script = sandbox_dir() / "make-base.sh"
    _run(["sh", str(script), LOCAL_BASE], log, "sandbox/make-base.sh")
    return LOCAL_BASE


def build_image(base: str | None = None, *, tag: str | None = None, force: bool = False,
                log: Callable[[str], None] | None = None) -> str:
    """Builds (or finds up to date) the sandbox image; returns its tag. Raises ImageBuildError."""
    tag = tag or image_name()
    log = log or (lambda text: print(text, file=sys.stderr))
    client = _client(timeout=600)
    try:
        base = base or choose_base(client, log)
        base_image = _image(client, base)
        if base_image is None:
            try:
                log(f"pulling {base}")
                base_image = client.images.pull(base)
            except Exception as err:  # noqa: BLE001
                raise ImageBuildError(f"base image {base} is not available: {err}") from None
        wanted = source_hash(base_image.id)
        existing = _image(client, tag)
        if existing is not None and not force and existing.labels.get(f"{LABEL}.hash") == wanted:
            log(f"{tag} is up to date ({wanted})")
            return tag
        wheels = repo_root() / "sandbox" / "wheels"
        with tempfile.TemporaryDirectory(prefix="autoconn-image-") as context_dir:
            context = Path(context_dir)
            shutil.copy2(sandbox_dir() / "Dockerfile", context / "Dockerfile")
            deps = download_wheels(wheels / "deps", log)
            shutil.copytree(deps, context / "wheels" / "deps", copy_function=_link_or_copy)
            build_app_wheel(context / "wheels" / "app", log)
            log(f"building {tag} from {base} (network none)")
            lines: list[str] = []
            stream = client.api.build(path=str(context), tag=tag, buildargs={"BASE": base}, rm=True, forcerm=True,
                                      pull=False, decode=True, network_mode="none",
                                      labels={f"{LABEL}.hash": wanted, f"{LABEL}.base": base})
            for chunk in stream:
                if "error" in chunk:
                    raise ImageBuildError("docker build failed: " + chunk["error"].strip() + "\n" + "".join(lines[-15:]))
                text = chunk.get("stream")
                if text:
                    lines.append(text)
                    if text.startswith("Step "):
                        log(text.strip())
        log(f"built {tag} ({wanted})")
        _prune_dangling(client)
        return tag
    finally:
        client.close()


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _prune_dangling(client: Any) -> None:
    """Old builds of the sandbox image become dangling: drop them (other images untouched)."""
    try:
        for image in client.images.list(filters={"dangling": True, "label": f"{LABEL}.hash"}):
            try:
                client.images.remove(image.id)
            except Exception:  # noqa: BLE001 - in use or already gone
                pass
    except Exception:  # noqa: BLE001
        pass


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m autoconn.sandbox.image", description="build the sandbox image")
    parser.add_argument("--base", default=None, help=f"base image (default: {HUB_BASE} if available, else {LOCAL_BASE})")
    parser.add_argument("--tag", default=None, help="image tag (default: $AUTOCONN_SANDBOX_IMAGE, else autoconn-sandbox:latest)")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        build_image(args.base, tag=args.tag, force=args.force)
    except ImageBuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
