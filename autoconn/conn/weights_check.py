"""Weights are data, checked before they are believed.

A ``weights.npz`` comes from a sandboxed worker (which ran candidate code) or from a library
folder someone else may have written. Before any array is decompressed, this module reads
the zip directory and each member's ``.npy`` header (a few hundred bytes of one member at a
time) and checks them against what the CoNN's spec says the arrays must be:

- exactly the expected names (embeddings, per-layer attention and MLP, unembed), no more;
- dtype float32 (little-endian), no object arrays (``allow_pickle`` stays off everywhere);
- each shape equal to the one computed from the spec (layers, heads x key size, MLP width,
  vocab, max_seq_len, output values) with one residual width shared by all of them;
- the total within a budget, the file and each member's declared size consistent with it.

A 3 MB archive that declares 3 GB of zeros is refused here, in milliseconds, with the array
it names; nothing is allocated for it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # runtime.py imports this module: no import cycle at run time
    from autoconn.conn.runtime import ConnSpec

MAX_TOTAL_BYTES = 256 * 1024 * 1024  # all arrays of one CoNN, decompressed
MAX_HEADER_BYTES = 4096  # an .npy header of ours is ~128 bytes
MEMBER_OVERHEAD_BYTES = 4096  # zip local + central entries, npy header, name (generous)
# Bounds on the spec itself, so the expected sizes are computed from sane numbers.
MAX_LAYERS = 512
MAX_WIDTH = 1 << 16
MAX_VOCAB = 1 << 16
MAX_SEQ_LEN = 1024
# The host runs a CoNN over batches of up to HOST_BATCH inputs padded to max_seq_len + 1: the
# attention logits and residual stream of one batch must fit this too (a spec with 60000 heads
# of width 1 has small weights but enormous activations).
HOST_BATCH = 512
MAX_ACTIVATION_BYTES = 1024 * 1024 * 1024
FLOAT32 = "<f4"


class WeightsError(ValueError):
    """A weights file that does not match its spec (or exceeds the budget): a rejected candidate."""

    stage = "weights"


def expected_arrays(spec: ConnSpec, residual_width: int) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every array a CoNN with this spec has (tracr's assembled model,
    as :func:`autoconn.conn.runtime.extract` flattens it)."""
    d = int(residual_width)
    attn = int(spec.num_heads) * int(spec.key_size)
    hidden = int(spec.mlp_hidden)
    out = len(spec.output_decoding) if spec.output_kind == "categorical" else 1
    shapes: dict[str, tuple[int, ...]] = {
        "token_embed/embeddings": (len(spec.input_encoding), d),
        "pos_embed/embeddings": (int(spec.max_seq_len) + 1, d),
        "unembed": (d, out),
    }
    for layer in range(int(spec.num_layers)):
        prefix = f"transformer/layer_{layer}"
        for part in ("query", "key", "value"):
            shapes[f"{prefix}/attn/{part}/w"] = (d, attn)
            shapes[f"{prefix}/attn/{part}/b"] = (attn,)
        shapes[f"{prefix}/attn/linear/w"] = (attn, d)
        shapes[f"{prefix}/attn/linear/b"] = (d,)
        shapes[f"{prefix}/mlp/linear_1/w"] = (d, hidden)
        shapes[f"{prefix}/mlp/linear_1/b"] = (hidden,)
        shapes[f"{prefix}/mlp/linear_2/w"] = (hidden, d)
        shapes[f"{prefix}/mlp/linear_2/b"] = (d,)
    return shapes


def _nbytes(shape: tuple[int, ...]) -> int:
    total = 4
    for n in shape:
        total *= n
    return total


def _check_spec(spec: ConnSpec) -> None:
    checks = [
        ("num_layers", spec.num_layers, 0, MAX_LAYERS),
        ("num_heads x key_size", int(spec.num_heads) * int(spec.key_size), 0, MAX_WIDTH),
        ("mlp_hidden", spec.mlp_hidden, 0, MAX_WIDTH),
        ("max_seq_len", spec.max_seq_len, 1, MAX_SEQ_LEN),
        ("input vocab", len(spec.input_encoding), 1, MAX_VOCAB),
        ("output values", len(spec.output_decoding), 0, MAX_VOCAB),
    ]
    for what, value, low, high in checks:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise WeightsError(f"the CoNN's spec is out of range: {what} = {value!r} (allowed {low}..{high})")
    if spec.output_kind not in ("categorical", "numerical"):
        raise WeightsError(f"the CoNN's spec has an unknown output kind {spec.output_kind!r}")
    if spec.output_kind == "categorical" and not spec.output_decoding:
        raise WeightsError("the CoNN's spec is categorical but lists no output values")


def _read_header(member: Any) -> tuple[tuple[int, ...], bool, str]:
    """(shape, fortran_order, dtype descr) from the start of an .npy member stream, reading
    at most MAX_HEADER_BYTES of it (never the array data)."""
    import numpy as np
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(member)
        if version == (1, 0):
            header = npy.read_array_header_1_0(member, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            header = npy.read_array_header_2_0(member, max_header_size=MAX_HEADER_BYTES)
        else:
            raise WeightsError(f"unsupported .npy format version {version}")
    except WeightsError:
        raise
    except Exception as err:  # noqa: BLE001 - any malformed header is a rejected file
        raise WeightsError(f"not a valid .npy header ({type(err).__name__}: {str(err)[:200]})") from None
    shape, fortran, dtype = header
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise WeightsError("object arrays are refused (they would need pickle)")
    return tuple(int(n) for n in shape), bool(fortran), dtype.str


def check_weights_file(path: str | os.PathLike[str], spec: ConnSpec, *, residual_width: int | None = None,
                       max_total_bytes: int = MAX_TOTAL_BYTES) -> dict[str, tuple[int, ...]]:
    """Raises WeightsError unless `path` is an npz whose arrays are exactly those `spec`
    implies (float32, the right shapes, one residual width - `residual_width` when given,
    e.g. from the compiled model's size) and within `max_total_bytes`. Returns name -> shape.

    Reads only the zip directory and each member's header: nothing is decompressed beyond
    the first bytes of each member."""
    _check_spec(spec)
    path = Path(path)
    try:
        file_size = path.stat().st_size
    except OSError as err:
        raise WeightsError(f"cannot read the weights file {path}: {err.strerror}") from None
    names_needed = len(expected_arrays(spec, 1))
    # The largest file a CoNN of this spec could need (uncompressed npz), checked before the zip
    # directory is parsed: a directory of millions of entries is refused unread.
    width_bound = max_total_bytes // 4
    file_bound = max_total_bytes + names_needed * MEMBER_OVERHEAD_BYTES + 65536
    if file_size > file_bound:
        raise WeightsError(f"the weights file is {file_size} bytes; a CoNN of this size needs at most {file_bound}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise WeightsError(f"the weights file is not an npz archive ({err})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) != names_needed:
            raise WeightsError(f"the weights file holds {len(infos)} arrays; this CoNN has {names_needed}")
        headers: dict[str, tuple[tuple[int, ...], zipfile.ZipInfo]] = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or name[:-4] in headers:
                raise WeightsError(f"unexpected member {name[:100]!r} in the weights file")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise WeightsError(f"{name[:100]}: unsupported compression")
            if info.file_size > max_total_bytes + MAX_HEADER_BYTES:
                raise WeightsError(f"{name[:100]} declares {info.file_size} bytes, over the budget of {max_total_bytes}")
            try:
                with archive.open(info) as member:
                    shape, _, dtype = _read_header(member)
            except WeightsError as err:
                raise WeightsError(f"{name[:100]}: {err}") from None
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
                raise WeightsError(f"{name[:100]}: unreadable ({type(err).__name__})") from None
            if dtype != FLOAT32:
                raise WeightsError(f"{name[:-4]} is {dtype}, expected float32 ({FLOAT32})")
            if any(n < 0 for n in shape) or any(n > width_bound for n in shape):
                raise WeightsError(f"{name[:-4]} has shape {shape}, out of range")
            headers[name[:-4]] = (shape, info)
        embed = headers.get("token_embed/embeddings")
        if embed is None or len(embed[0]) != 2:
            raise WeightsError("the weights file has no token_embed/embeddings matrix")
        width = int(residual_width) if residual_width is not None else embed[0][1]
        if not 1 <= width <= MAX_WIDTH:
            raise WeightsError(f"residual width {width} is out of range (1..{MAX_WIDTH})")
        expected = expected_arrays(spec, width)
        total = sum(_nbytes(shape) for shape in expected.values())
        if total > max_total_bytes:
            raise WeightsError(f"a CoNN of this spec needs {total} bytes of weights, over the budget of {max_total_bytes}")
        positions = int(spec.max_seq_len) + 1
        widest = max(width, int(spec.num_heads) * int(spec.key_size), int(spec.mlp_hidden))
        activations = 4 * HOST_BATCH * positions * (int(spec.num_heads) * positions + widest)
        if activations > MAX_ACTIVATION_BYTES:
            raise WeightsError(f"running a CoNN of this spec would need {activations} bytes of activations per batch "
                               f"(heads {spec.num_heads}, length {spec.max_seq_len}, width {widest}), "
                               f"over {MAX_ACTIVATION_BYTES}")
        missing = sorted(set(expected) - set(headers))
        if missing:
            raise WeightsError(f"the weights file lacks {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
        for name, want in expected.items():
            shape, info = headers[name]
            if shape != want:
                raise WeightsError(f"{name} has shape {shape}; the spec implies {want}")
            if info.file_size > _nbytes(want) + MAX_HEADER_BYTES:
                raise WeightsError(f"{name}: the archive declares {info.file_size} bytes for {_nbytes(want)} bytes of data")
    return expected

