"""autoconn.conn.weights_check and host_verdict.parse_spec: weights are data, checked against
the spec before anything is decompressed (issue 12). No sandbox, no compile: npz files built
from the expected shapes."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from autoconn.conn.host_verdict import parse_spec
from autoconn.conn.runtime import ConnRuntime, ConnSpec
from autoconn.conn.weights_check import WeightsError, check_weights_file, expected_arrays

SPEC = {"input_encoding": [[0, 0], [1, 1], [2, 2], [3, 3], ["BOS", 4], ["PAD", 5]], "bos_token": "BOS",
        "pad_token": "PAD", "output_kind": "categorical", "output_decoding": [0, 1, 2, 3], "max_seq_len": 5,
        "num_layers": 2, "num_heads": 1, "key_size": 7, "mlp_hidden": 12, "causal": False}
WIDTH = 23


def spec(**changes: object) -> ConnSpec:
    return ConnSpec.from_json({**SPEC, **changes})


def write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def good_arrays() -> dict[str, np.ndarray]:
    return {name: np.zeros(shape, dtype=np.float32) for name, shape in expected_arrays(spec(), WIDTH).items()}


def test_a_matching_file_passes_and_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "w.npz", good_arrays())
    shapes = check_weights_file(path, spec(), residual_width=WIDTH)
    assert shapes["unembed"] == (WIDTH, 4) and len(shapes) == 3 + 2 * 12
    loaded = ConnRuntime.load(path, spec())
    assert {name: loaded.weights[name].shape for name in loaded.weights} == shapes


@pytest.mark.parametrize("change, words", [
    (lambda a: a.update(extra=np.zeros(1, np.float32)), "arrays"),
    (lambda a: a.pop("unembed"), "arrays"),
    (lambda a: a.update(unembed=np.zeros((WIDTH, 5), np.float32)), "unembed"),
    (lambda a: a.update(unembed=np.zeros((WIDTH, 4), np.float64)), "float32"),
    (lambda a: a.update({"pos_embed/embeddings": np.zeros((6, WIDTH + 1), np.float32)}), "pos_embed"),
])
def test_mismatches_are_refused_with_the_array_named(tmp_path: Path, change, words: str) -> None:
    arrays = good_arrays()
    change(arrays)
    path = write(tmp_path / "w.npz", arrays)
    with pytest.raises(WeightsError, match=words):
        check_weights_file(path, spec())


def test_object_arrays_are_refused_without_unpickling(tmp_path: Path) -> None:
    arrays = good_arrays()
    arrays["unembed"] = np.array([object()] * 4, dtype=object)
    path = tmp_path / "w.npz"
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(WeightsError, match="object arrays|pickle"):
        check_weights_file(path, spec())


def test_residual_width_must_match_the_reported_size(tmp_path: Path) -> None:
    path = write(tmp_path / "w.npz", good_arrays())
    with pytest.raises(WeightsError, match="implies"):
        check_weights_file(path, spec(), residual_width=WIDTH + 1)


def test_a_header_declaring_a_gigabyte_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in good_arrays().items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                if name == "unembed":
                    header = {"descr": "<f4", "fortran_order": False, "shape": (16384, 16384)}
                    np.lib.format.write_array_header_1_0(member, header)
                    member.write(bytes(1 << 20))  # the rest of the "data" never needs to exist
                else:
                    np.lib.format.write_array(member, array)
    started = time.monotonic()
    with pytest.raises(WeightsError, match="unembed"):
        check_weights_file(path, spec())
    assert time.monotonic() - started < 1


def test_not_a_zip_and_an_oversized_file_are_refused(tmp_path: Path) -> None:
    pickled = tmp_path / "pickle.npz"
    pickled.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(WeightsError, match="not an npz"):
        check_weights_file(pickled, spec())
    huge = tmp_path / "huge.npz"
    with open(huge, "wb") as handle:
        handle.truncate(300 * 1024 * 1024)  # sparse: no disk used
    with pytest.raises(WeightsError, match="needs at most"):
        check_weights_file(huge, spec())


@pytest.mark.parametrize("changes, words", [
    ({"num_layers": 10**6}, "num_layers"),
    ({"max_seq_len": 10**5}, "max_seq_len"),
    ({"output_kind": "other"}, "output kind"),
    ({"output_decoding": []}, "no output values"),
])
def test_a_spec_out_of_range_is_refused_before_the_file_is_read(tmp_path: Path, changes: dict, words: str) -> None:
    with pytest.raises(WeightsError, match=words):
        check_weights_file(tmp_path / "absent.npz", spec(**changes))


def test_small_weights_with_enormous_activations_are_refused(tmp_path: Path) -> None:
    """60000 heads of width 1 at length 1000: a few MB of weights, terabytes of attention logits."""
    wide = spec(num_heads=60000, key_size=1, num_layers=1, max_seq_len=1000, mlp_hidden=1)
    arrays = {name: np.zeros(shape, dtype=np.float32) for name, shape in expected_arrays(wide, 1).items()}
    path = write(tmp_path / "w.npz", arrays)
    with pytest.raises(WeightsError, match="activations"):
        check_weights_file(path, wide)


def test_the_workers_spec_must_match_what_the_host_compiled() -> None:
    expect = {"vocab": [0, 1, 2, 3], "max_seq_len": 5, "causal": False, "output_kind": "categorical",
              "bos": "BOS", "pad": "PAD"}
    assert parse_spec(SPEC, expect).max_seq_len == 5
    for changes, words in [({"max_seq_len": 900}, "max_seq_len"), ({"causal": True}, "causal"),
                           ({"output_kind": "numerical"}, "output kind"),
                           ({"input_encoding": [[0, 0], [1, 1], [True, 2], [3, 3], ["BOS", 4], ["PAD", 5]]}, "vocab")]:
        with pytest.raises(WeightsError, match=words):
            parse_spec({**SPEC, **changes}, expect)
    with pytest.raises(WeightsError, match="malformed"):
        parse_spec({"num_layers": 2}, expect)
    with pytest.raises(WeightsError, match="no spec"):
        parse_spec(None, expect)
