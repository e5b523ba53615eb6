"""The CoNN library on disk: ``generated_conns/<name>/`` (program.py, conn.json, weights.npz)
and ``generated_conns/index.json``.

An entry is built in a hidden temporary folder and renamed into place, and the index is
rewritten through a temporary file and ``os.replace`` under a file lock, so a process
killed mid-write leaves the previous library intact and concurrent writers do not lose
each other's entries.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock

from autoconn.conn.runtime import ConnRuntime, ConnSpec
from autoconn.conn.weights_check import WeightsError, check_weights_file

INDEX_FILE = "index.json"
PROGRAM_FILE = "program.py"
META_FILE = "conn.json"
WEIGHTS_FILE = "weights.npz"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FORMAT_VERSION = 1


class LibraryError(Exception):
    """The library cannot do what was asked (bad name, entry exists, entry missing or damaged)."""


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name) or name in (".", ".."):
        raise LibraryError(f"invalid CoNN name {name!r}: use letters, digits, '_', '-' or '.', at most 64 characters, not starting with a symbol")
    return name


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _atomic_write_text(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_program(name: str, source: str, meta: dict[str, Any]) -> str:
    """program.py: a header docstring a reviewer reads first, then the verified source as is."""
    size = meta.get("size", {})
    heldout = meta.get("verification", {})
    provenance = meta.get("provenance", {})
    vocab = ", ".join(repr(t) for t in meta.get("vocab", []))
    lines = [
        f"CoNN {name!r}: {meta.get('description') or '(no description given)'}",
        "",
        f"Input vocab:  {{{vocab}}}",
        f"Output:       {meta.get('output_kind')} ({meta.get('output_shape')})"
        + (f", values {meta.get('output_vocab')}" if meta.get("output_kind") == "categorical" else ""),
        f"Max length:   {meta.get('max_seq_len')} tokens (compiled), proven on inputs up to {heldout.get('max_length')} tokens",
        f"Found by:     {provenance.get('inducer', '?')}"
        + (f" after {provenance['attempts']} attempt(s)" if provenance.get("attempts") else "")
        + (f", run {provenance['run_id']}" if provenance.get("run_id") else ""),
        f"Verified:     {heldout.get('correct')}/{heldout.get('total')} {heldout.get('examples', 'held-out')} examples "
        f"({100 * float(heldout.get('accuracy', 0)):.1f}%) by running the compiled model",
        f"Model:        {size.get('layers')} layers, {size.get('heads')} heads, residual width "
        f"{size.get('residual_width')}, {size.get('parameters')} parameters",
        f"Task file:    {meta.get('task', {}).get('path')} (sha256 {str(meta.get('task', {}).get('sha256', ''))[:12]})",
        "",
        "Weights: weights.npz beside this file; rebuild them with tracr from `program` using",
        "the compiler settings in conn.json.",
    ]
    header = '"""' + "\n".join(lines) + '\n"""\n'
    body = source.strip("\n") + "\n"
    if body.lstrip().startswith(('"""', "'''")):
        body = "\n" + body
    return header + body


@dataclass(frozen=True)
class LibraryEntry:
    """A registered CoNN as read back from disk."""

    name: str
    path: Path
    meta: dict[str, Any]

    @property
    def spec(self) -> ConnSpec:
        return ConnSpec.from_json(self.meta["spec"])

    @property
    def program_path(self) -> Path:
        return self.path / PROGRAM_FILE

    def runtime(self) -> ConnRuntime:
        """Loads the stored weights; no recompiling, no execution of program.py."""
        weights = self.path / WEIGHTS_FILE
        if not weights.exists():
            raise LibraryError(f"{weights} is missing: re-register the CoNN or restore the file")
        try:
            return ConnRuntime.load(weights, self.spec)
        except WeightsError as err:  # a library folder may come from someone else
            raise LibraryError(f"{weights} was refused: {err}") from None


class Library:
    """A folder of verified CoNNs plus its index."""

    def __init__(self, root: str | Path = "generated_conns") -> None:
        self.root = Path(root)

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    def _lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".index.lock"), timeout=60)

    def read_index(self) -> dict[str, Any]:
        if not self.index_path.exists():
            return {"format": FORMAT_VERSION, "conns": {}}
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise LibraryError(f"{self.index_path} is damaged ({err.msg} at line {err.lineno}); restore it from git") from None
        data.setdefault("conns", {})
        return data

    def names(self) -> list[str]:
        return sorted(self.read_index()["conns"])

    def exists(self, name: str) -> bool:
        return (self.root / name).exists() or name in self.read_index()["conns"]

    def get(self, name: str) -> LibraryEntry:
        check_name(name)
        path = self.root / name
        meta_path = path / META_FILE
        if not meta_path.exists():
            known = ", ".join(self.names()) or "none"
            raise LibraryError(f"no CoNN named {name!r} in {self.root} (registered: {known})")
        return LibraryEntry(name=name, path=path, meta=json.loads(meta_path.read_text(encoding="utf-8")))

    def entries(self) -> Iterator[LibraryEntry]:
        for name in self.names():
            if (self.root / name / META_FILE).exists():
                yield self.get(name)

    def write(self, name: str, source: str, meta: dict[str, Any], runtime: ConnRuntime | None = None,
              weights_file: str | Path | None = None, *, force: bool = False) -> LibraryEntry:
        """Registers a verified CoNN. Give the weights as a loaded runtime or as an npz file."""
        check_name(name)
        if runtime is None and weights_file is None:
            raise ValueError("weights are required: pass runtime= or weights_file=")
        if weights_file is not None:  # weights are data: checked against the entry's spec before they are kept
            try:
                check_weights_file(weights_file, ConnSpec.from_json(meta["spec"]),
                                   residual_width=(meta.get("size") or {}).get("residual_width"))
            except (WeightsError, KeyError, TypeError, ValueError) as err:
                raise LibraryError(f"the weights for {name!r} were refused: {err}") from None
        meta = dict(meta, name=name, format=FORMAT_VERSION, source_sha256=sha256_text(source))
        meta.setdefault("created_at", now_iso())
        with self._lock():
            final = self.root / name
            if final.exists() and not force:
                raise LibraryError(f"a CoNN named {name!r} already exists in {self.root}; pick another --name or pass --force")
            staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".staging-{name}-"))
            try:
                (staging / PROGRAM_FILE).write_text(render_program(name, source, meta), encoding="utf-8")
                (staging / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
                if runtime is not None:
                    runtime.save_weights(staging / WEIGHTS_FILE)
                else:
                    shutil.copyfile(str(weights_file), staging / WEIGHTS_FILE)
                if final.exists():
                    retired = Path(tempfile.mkdtemp(dir=self.root, prefix=f".retired-{name}-"))
                    os.replace(final, retired / name)
                    os.replace(staging, final)
                    shutil.rmtree(retired, ignore_errors=True)
                else:
                    os.replace(staging, final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            index = self.read_index()
            index["format"] = FORMAT_VERSION
            index["conns"][name] = index_entry(name, meta)
            index["conns"] = dict(sorted(index["conns"].items()))
            _atomic_write_text(self.index_path, json.dumps(index, indent=2, default=str) + "\n")
        return self.get(name)

    def update_meta(self, name: str, changes: dict[str, Any]) -> LibraryEntry:
        """Replaces top-level conn.json fields of an existing entry (and its index line), atomically
        under the library lock; program.py and the weights are left as they are."""
        with self._lock():
            entry = self.get(name)
            meta = dict(entry.meta, **changes)
            _atomic_write_text(entry.path / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
            index = self.read_index()
            index["conns"][name] = index_entry(name, meta)
            index["conns"] = dict(sorted(index["conns"].items()))
            _atomic_write_text(self.index_path, json.dumps(index, indent=2, default=str) + "\n")
        return self.get(name)

    def write_index(self, index: dict[str, Any]) -> None:
        """Replaces the index atomically (used by tools that rebuild it)."""
        with self._lock():
            _atomic_write_text(self.index_path, json.dumps(index, indent=2, default=str) + "\n")


def index_entry(name: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The summary line of one CoNN in index.json."""
    size = meta.get("size", {})
    verification = meta.get("verification", {})
    return {
        "path": f"{name}/{PROGRAM_FILE}",
        "description": meta.get("description", ""),
        "vocab": meta.get("vocab"),
        "output_kind": meta.get("output_kind"),
        "output_shape": meta.get("output_shape"),
        "max_seq_len": meta.get("max_seq_len"),
        "layers": size.get("layers"),
        "parameters": size.get("parameters"),
        "heldout_accuracy": verification.get("accuracy"),
        "heldout_examples": verification.get("total"),
        "inducer": meta.get("provenance", {}).get("inducer"),
        "created_at": meta.get("created_at"),
        "source_sha256": meta.get("source_sha256"),
        "fusion": _fusion_summary(meta.get("fusion")),
    }


def _fusion_summary(fusion: Any) -> Any:
    """How the text calls this CoNN, in short (the full spec is in conn.json)."""
    if not isinstance(fusion, dict):
        return None
    return {key: fusion.get(key) for key in ("operand_start", "trigger", "split")}


def describe(meta: dict[str, Any]) -> str:
    """A few lines for `autoconn show`."""
    return textwrap.dedent(json.dumps(meta, indent=2, default=str))
