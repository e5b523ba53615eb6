"""The CoNN library on disk: ``generated_conns/<name>/`` (program.py, conn.json, weights.npz)
and ``generated_conns/index.json``.

Registering is a small transaction under the library's file lock:

1. the entry is written in a hidden ``.staging-*`` folder and fsynced;
2. the new index is written to a temporary file and fsynced (a full disk fails here, and
   nothing has changed);
3. the staging folder takes the entry's place: renamed in, or, replacing an entry, swapped
   with it in one ``renameat2(RENAME_EXCHANGE)`` (so the old entry is whole until the new
   one is), then the old copy is removed;
4. the index file is replaced.

A process killed anywhere leaves either the old state or a folder newer than its index line;
:meth:`Library.check` (``autoconn list --check``, and automatically before each write and
whenever a listing finds the two disagree) rebuilds such lines from the folders' own
conn.json and removes staging leftovers.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from autoconn.conn.graph import GRAPH_FILE
from autoconn.conn.runtime import ConnRuntime, ConnSpec
from autoconn.conn.weights_check import WeightsError, check_weights_file
from autoconn.faults import exchange_disabled, kill_point

INDEX_FILE = "index.json"
PROGRAM_FILE = "program.py"
META_FILE = "conn.json"
WEIGHTS_FILE = "weights.npz"
NAME_PATTERN = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
RESERVED_NAMES = frozenset({"con", "prn", "aux", "nul", "com1", "lpt1"})  # device names on some systems
HIDDEN_PREFIXES = (".staging-", ".retired-", ".index.json.")
FORMAT_VERSION = 1
MAX_META_BYTES = 4 * 1024 * 1024  # a conn.json or index.json larger than this is not ours


class LibraryError(Exception):
    """The library cannot do what was asked (bad name, entry exists, entry missing or damaged)."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name in RESERVED_NAMES:
        shown = repr(name)[:80]
        why = "is reserved" if name in RESERVED_NAMES else "is not a valid name"
        raise LibraryError(f"CoNN name {shown} {why}: use lowercase letters, digits, '_' and '-', at most 64 characters, "
                           "starting with a letter or digit (pass --name)")
    return name


def _fsync_dir(path: Path) -> None:
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two paths in one step (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _read_json(path: Path, what: str) -> Any:
    """A library JSON file, bounded and with every failure as a LibraryError."""
    try:
        size = path.stat().st_size
        if size > MAX_META_BYTES:
            raise LibraryError(f"{path} is {size} bytes, larger than any {what} this tool writes; restore it from git")
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise LibraryError(f"{path} is damaged ({type(err).__name__}); restore it from git or re-register the CoNN") from None
    except OSError as err:
        raise LibraryError(f"{path}: {err.strerror or err}") from None


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = _prepare_text(path, text)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _prepare_text(path: Path, text: str) -> Path:
    """`text` written and fsynced beside `path` under a hidden name, ready for os.replace."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def render_program(name: str, source: str, meta: dict[str, Any]) -> str:
    """program.py: a header docstring a reviewer reads first, then the verified source as is."""
    from autoconn.verdict import verified_length

    size = meta.get("size", {})
    record = meta.get("verified") or {}
    provenance = meta.get("provenance", {})
    vocab = ", ".join(repr(t) for t in meta.get("vocab", []))
    statement = record.get("statement") or f"proven on inputs up to {verified_length(meta)} tokens"
    revealed = record.get("validation_revealed")
    lines = [
        f"CoNN {name!r}: {meta.get('description') or '(no description given)'}",
        "",
        f"Input vocab:  {{{vocab}}}",
        f"Output:       {meta.get('output_kind')} ({meta.get('output_shape')})"
        + (f", values {meta.get('output_vocab')}" if meta.get("output_kind") == "categorical" else ""),
        f"Max length:   {meta.get('max_seq_len')} tokens (compiled); proven up to {verified_length(meta)} tokens, "
        "and longer inputs are refused unless asked for",
        f"Found by:     {provenance.get('inducer', '?')}"
        + (f" after {provenance['attempts']} attempt(s)" if provenance.get("attempts") else "")
        + (f", run {provenance['run_id']}" if provenance.get("run_id") else ""),
        *textwrap.wrap(f"Verified:     {statement}, by running the compiled model"
                       + (f"; {revealed} validation counterexample(s) were shown to the inducer" if revealed else ""),
                       width=96, subsequent_indent=" " * 14),
        f"Model:        {size.get('layers')} layers, {size.get('heads')} heads, residual width "
        f"{size.get('residual_width')}, {size.get('parameters')} parameters",
        f"Task file:    {meta.get('task', {}).get('path')} (sha256 {str(meta.get('task', {}).get('sha256', ''))[:12]})",
        "",
        "Weights: weights.npz beside this file; rebuild them with tracr from `program` using",
        "the compiler settings in conn.json.",
    ]
    quote = '"' * 3
    safe = [line.replace(quote, "'''").replace("\\", "/") for line in lines]  # a description cannot end the docstring
    header = quote + "\n".join(safe) + "\n" + quote + "\n"
    body = source.strip("\n") + "\n"
    if body.lstrip().startswith((quote, "'''")):
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
        try:
            return ConnSpec.from_json(self.meta["spec"])
        except (KeyError, TypeError, ValueError) as err:
            raise LibraryError(f"{self.path / META_FILE} has no usable spec ({type(err).__name__}: {err}); "
                               "re-register the CoNN") from None

    @property
    def program_path(self) -> Path:
        return self.path / PROGRAM_FILE

    @property
    def verified_length(self) -> int:
        from autoconn.verdict import verified_length

        return verified_length(self.meta)

    def runtime(self) -> ConnRuntime:
        """Loads the stored weights; no recompiling, no execution of program.py."""
        weights = self.path / WEIGHTS_FILE
        if not weights.exists():
            raise LibraryError(f"{weights} is missing: re-register the CoNN or restore the file")
        try:
            return ConnRuntime.load(weights, self.spec)
        except WeightsError as err:  # a library folder may come from someone else
            raise LibraryError(f"{weights} was refused: {err}") from None
        except (ValueError, KeyError, OSError) as err:
            raise LibraryError(f"{weights} cannot be loaded ({err}); re-register the CoNN") from None


class Library:
    """A folder of verified CoNNs plus its index."""

    def __init__(self, root: str | Path = "generated_conns") -> None:
        self.root = Path(root)

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    def _lock(self) -> FileLock:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LibraryError(f"cannot create the library folder {self.root}: {err.strerror or err}") from None
        return FileLock(str(self.root / ".index.lock"), timeout=120)

    def check_writable(self) -> None:
        """Raises LibraryError when entries cannot be written here (checked before any long work)."""
        probe = self.root if self.root.exists() else next((p for p in self.root.parents if p.exists()), Path("."))
        if not probe.is_dir():
            raise LibraryError(f"the library {self.root} is not a folder")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise LibraryError(f"the library folder {probe} is not writable: choose another with --out, or fix its permissions")

    def read_index(self) -> dict[str, Any]:
        if not self.index_path.exists():
            return {"format": FORMAT_VERSION, "conns": {}}
        data = _read_json(self.index_path, "index")
        if not isinstance(data, dict) or not isinstance(data.get("conns", {}), dict):
            raise LibraryError(f"{self.index_path} is not a library index; rebuild it with `autoconn list --check`")
        data.setdefault("conns", {})
        return data

    def names(self) -> list[str]:
        return sorted(self.read_index()["conns"])

    def exists(self, name: str) -> bool:
        return (self.root / name).exists() or name in self.read_index()["conns"]

    def _meta(self, name: str) -> dict[str, Any]:
        meta = _read_json(self.root / name / META_FILE, "conn.json")
        if not isinstance(meta, dict):
            raise LibraryError(f"{self.root / name / META_FILE} is not a CoNN's metadata; re-register the CoNN")
        return meta

    def get(self, name: str) -> LibraryEntry:
        check_name(name)
        path = self.root / name
        if not (path / META_FILE).is_file():
            known = ", ".join(self.names()) or "none"
            raise LibraryError(f"no CoNN named {name!r} in {self.root} (registered: {known})")
        return LibraryEntry(name=name, path=path, meta=self._meta(name))

    def entries(self) -> Iterator[LibraryEntry]:
        for name in self.names():
            if (self.root / name / META_FILE).exists():
                yield self.get(name)

    def owner_run(self, name: str) -> str | None:
        """The run that registered `name` (None for hand-checked entries, or no entry)."""
        try:
            return (self._meta(name).get("provenance") or {}).get("run_id")
        except LibraryError:
            return None

    def write(self, name: str, source: str, meta: dict[str, Any], runtime: ConnRuntime | None = None,
              weights_file: str | Path | None = None, *, force: bool = False, run_id: str | None = None,
              graph: dict[str, Any] | None = None) -> LibraryEntry:
        """Registers a verified CoNN (the steps are in the module docstring). Give the weights as
        a loaded runtime or as an npz file. `run_id`: an entry this same run wrote before it was
        interrupted is replaced without --force (a resumed registration finishing). `graph`: the
        compiler's graph facts (autoconn.conn.graph), kept as graph.json for `autoconn review`."""
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
        try:
            with self._lock():
                self._problems(repair=True)
                final = self.root / name
                ours = run_id is not None and final.exists() and self.owner_run(name) == run_id
                if final.exists() and not (force or ours):
                    raise LibraryError(f"a CoNN named {name!r} already exists in {self.root}; "
                                       "pick another --name or pass --force")
                self._commit(name, source, meta, runtime, weights_file, graph)
        except OSError as err:
            raise LibraryError(os_problem(err, f"registering {name!r} in {self.root}")) from None
        return self.get(name)

    def _commit(self, name: str, source: str, meta: dict[str, Any], runtime: ConnRuntime | None,
                weights_file: str | Path | None, graph: dict[str, Any] | None) -> None:
        final = self.root / name
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".staging-{name}-"))
        index_tmp: Path | None = None
        try:
            _write_synced(staging / PROGRAM_FILE, render_program(name, source, meta).encode("utf-8"))
            _write_synced(staging / META_FILE, (json.dumps(meta, indent=2, default=str) + "\n").encode("utf-8"))
            if runtime is not None:
                runtime.save_weights(staging / WEIGHTS_FILE)
            else:
                shutil.copyfile(str(weights_file), staging / WEIGHTS_FILE)
            with open(staging / WEIGHTS_FILE, "rb") as handle:
                os.fsync(handle.fileno())
            if graph:
                _write_synced(staging / GRAPH_FILE, (json.dumps(graph, indent=1, default=str) + "\n").encode("utf-8"))
            _fsync_dir(staging)
            index = self.read_index()
            index["format"] = FORMAT_VERSION
            index["conns"][name] = index_entry(name, meta)
            index["conns"] = dict(sorted(index["conns"].items()))
            index_tmp = _prepare_text(self.index_path, json.dumps(index, indent=2, default=str) + "\n")
            kill_point("library:staged")
            if final.exists():
                if exchange_disabled() or not _exchange(staging, final):  # two renames, mended by check()
                    retired = Path(tempfile.mkdtemp(dir=self.root, prefix=f".retired-{name}-"))
                    os.replace(final, retired / name)
                    kill_point("library:retired")
                    os.replace(staging, final)
                    staging = retired
            else:
                os.replace(staging, final)
            _fsync_dir(self.root)
            kill_point("library:swapped")
            os.replace(index_tmp, self.index_path)
            index_tmp = None
            _fsync_dir(self.root)
        finally:
            if index_tmp is not None:
                index_tmp.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)

    def check(self, *, repair: bool = True) -> list[str]:
        """Compares the index with the folders and returns what disagrees, mending it when
        `repair` (under the lock): staging leftovers, an entry moved aside by an interrupted
        replace, entries missing from the index or listed without a folder, stale index lines."""
        if not repair:
            return self._problems(repair=False)
        try:
            with self._lock():
                return self._problems(repair=True)
        except OSError as err:
            raise LibraryError(os_problem(err, f"mending {self.root}")) from None

    def _problems(self, *, repair: bool) -> list[str]:
        if not self.root.is_dir():
            return []
        problems: list[str] = []
        try:
            index = self.read_index()
        except LibraryError:
            problems.append(f"{INDEX_FILE}: damaged; rebuilt from the entries' conn.json")
            index = {"format": FORMAT_VERSION, "conns": {}}
        conns: dict[str, Any] = index["conns"]
        for child in sorted(self.root.iterdir()):
            if not child.name.startswith(HIDDEN_PREFIXES):
                continue
            inner = [p for p in child.iterdir()] if child.is_dir() and child.name.startswith(".retired-") else []
            moved = inner[0] if len(inner) == 1 else None
            if moved is not None and not (self.root / moved.name).exists():
                problems.append(f"{moved.name}: moved aside by an interrupted replace; put back")
                if repair:
                    os.replace(moved, self.root / moved.name)
            else:
                problems.append(f"{child.name}: left over from an interrupted write; removed")
            if repair:
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        for child in sorted(self.root.iterdir()):
            if not child.is_dir() or child.name.startswith(".") or not NAME_PATTERN.match(child.name):
                continue
            if not all((child / f).is_file() for f in (PROGRAM_FILE, META_FILE, WEIGHTS_FILE)):
                continue
            try:
                line = index_entry(child.name, self._meta(child.name))
            except LibraryError:
                continue  # not an entry of ours: left alone, never listed
            if child.name not in conns:
                problems.append(f"{child.name}: registered but missing from the index; listed again")
                conns[child.name] = line
            elif (conns[child.name].get("source_sha256"), conns[child.name].get("created_at")) != \
                    (line.get("source_sha256"), line.get("created_at")):
                problems.append(f"{child.name}: index line older than the entry; rewritten")
                conns[child.name] = line
        for name in list(conns):
            if not (self.root / name / META_FILE).is_file():
                problems.append(f"{name}: listed in the index but its folder is gone; unlisted")
                del conns[name]
        if problems and repair:
            index["format"] = FORMAT_VERSION
            index["conns"] = dict(sorted(conns.items()))
            _atomic_write_text(self.index_path, json.dumps(index, indent=2, default=str) + "\n")
        return problems

    def update_meta(self, name: str, changes: dict[str, Any]) -> LibraryEntry:
        """Replaces top-level conn.json fields of an existing entry (and its index line), atomically
        under the library lock; program.py and the weights are left as they are."""
        try:
            with self._lock():
                entry = self.get(name)
                meta = dict(entry.meta, **changes)
                _atomic_write_text(entry.path / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
                if "verified" in changes:  # the header states the verdict: keep it true
                    source = _program_source(entry.program_path.read_text(encoding="utf-8"))
                    _atomic_write_text(entry.program_path, render_program(name, source, meta))
                index = self.read_index()
                index["conns"][name] = index_entry(name, meta)
                index["conns"] = dict(sorted(index["conns"].items()))
                _atomic_write_text(self.index_path, json.dumps(index, indent=2, default=str) + "\n")
        except OSError as err:
            raise LibraryError(os_problem(err, f"updating {name!r} in {self.root}")) from None
        return self.get(name)


    def write_index(self, index: dict[str, Any]) -> None:
        """Replaces the index atomically (for tools that rebuild it)."""
        with self._lock():
            _atomic_write_text(self.index_path, json.dumps(index, indent=2, default=str) + "\n")


def _program_source(text: str) -> str:
    """program.py without the header docstring render_program put on it."""
    quote = '"' * 3
    if text.startswith(quote):
        end = text.find(quote, 3)
        if end > 0:
            return text[end + 3:].lstrip("\n")
    return text


def os_problem(err: OSError, doing: str) -> str:
    """One line for a failed write: a full disk and a read-only folder say what to do."""
    if err.errno == errno.ENOSPC:
        return f"{doing}: no space left on the device; nothing was changed: free some space and try again (or resume the run)"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{doing}: {err.strerror} ({err.filename}); nothing was changed: choose another --out or fix the permissions"
    return f"{doing} failed: {err.strerror or err} ({err.filename})"


def index_entry(name: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The summary line of one CoNN in index.json."""
    from autoconn.verdict import verdict_counts, verified_length

    size = meta.get("size", {})
    correct, total = verdict_counts(meta)
    record = meta.get("verified") or {}
    return {
        "path": f"{name}/{PROGRAM_FILE}",
        "description": meta.get("description", ""),
        "vocab": meta.get("vocab"),
        "output_kind": meta.get("output_kind"),
        "output_shape": meta.get("output_shape"),
        "max_seq_len": meta.get("max_seq_len"),
        "verified_length": verified_length(meta),
        "verified_how": record.get("how", "examples"),
        "held_out": record.get("held_out", True),
        "layers": size.get("layers"),
        "parameters": size.get("parameters"),
        "heldout_accuracy": correct / total if total else None,
        "heldout_examples": total,
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
