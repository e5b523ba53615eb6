"""`autoconn export`: safetensors (+ the numpy-only loader) and TransformerLens, each held to the
runtime on 1,000 inputs: identical decoded outputs, numerical outputs and logits within 1e-5."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from autoconn.cli import app
from autoconn.conn.artifact import Library
from tests.conftest import FIXTURE_LIBRARY, IN_CI

LIBRARY = FIXTURE_LIBRARY
N_INPUTS = 1000


def random_inputs(entry: Any, seed: int = 0, n: int = N_INPUTS) -> list[list[Any]]:
    rng = random.Random(seed)
    vocab, longest = entry.spec.vocab, entry.spec.max_seq_len
    return [[rng.choice(vocab) for _ in range(rng.randint(1, longest))] for _ in range(n)]


def load_standalone(folder: Path) -> Any:
    """Imports the exported conn_numpy.py as a file, not from the autoconn package."""
    spec = importlib.util.spec_from_file_location(f"conn_numpy_{folder.name}", folder / "conn_numpy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load(folder)


def assert_same(exported: list[list[Any]], expected: list[list[Any]], kind: str) -> None:
    assert len(exported) == len(expected)
    for got, want in zip(exported, expected):
        if kind == "numerical":
            assert np.allclose(got, want, atol=1e-5, rtol=0), (got, want)
        else:
            assert got == want


@pytest.mark.parametrize("name", ["reverse", "sort", "parity", "last_token", "hist"])
def test_safetensors_export_runs_like_the_runtime(tmp_path: Path, name: str):
    from autoconn.export.safetensors_export import export_safetensors

    entry = Library(LIBRARY).get(name)
    folder = export_safetensors(name, tmp_path / name, LIBRARY)
    config = json.loads((folder / "config.json").read_text())
    assert config["verified_length"] == entry.verified_length and config["max_seq_len"] == entry.spec.max_seq_len
    assert config["architecture"]["n_layers"] == entry.spec.num_layers and config["architecture"]["activation"] == "relu"
    conn = load_standalone(folder)
    inputs = random_inputs(entry)
    assert conn.run(inputs) == entry.runtime().run(inputs)


def test_safetensors_numerical_within_1e5(tmp_path: Path, numerical_library: Path):
    from autoconn.export.safetensors_export import export_safetensors

    entry = Library(numerical_library).get("frac_prevs")
    folder = export_safetensors("frac_prevs", tmp_path / "fp", numerical_library)
    config = json.loads((folder / "config.json").read_text())
    assert config["verified_how"] == "oracle" and config["output"]["kind"] == "numerical"
    assert config["architecture"]["query_scale"] == pytest.approx(entry.spec.key_size ** 0.5)
    inputs = random_inputs(entry, seed=3)
    assert_same(load_standalone(folder).run(inputs), entry.runtime().run(inputs), "numerical")


def test_safetensors_file_is_standard_and_loader_needs_numpy_only(tmp_path: Path):
    from safetensors.numpy import load_file

    from autoconn.export.numpy_model import read_safetensors
    from autoconn.export.safetensors_export import export_safetensors

    folder = export_safetensors("reverse", tmp_path / "r", LIBRARY)
    ours, theirs = read_safetensors(folder / "model.safetensors"), load_file(str(folder / "model.safetensors"))
    assert set(ours) == set(theirs) and all(np.array_equal(ours[k], theirs[k]) for k in theirs)
    with np.load(LIBRARY / "reverse" / "weights.npz") as stored:  # exactly the runtime's weights
        assert all(np.array_equal(stored[k], ours[k]) for k in stored.files)
    source = (folder / "conn_numpy.py").read_text()
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "collections.abc", "json", "math", "struct", "pathlib", "typing", "numpy"}, imports


def _hooked():
    try:
        import torch  # noqa: F401
        import transformer_lens  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("the export extra is not installed in CI (.ci/run installs it: pip install -e '.[export]')")
        pytest.skip("torch/transformer-lens not installed: pip install -e '.[export]'")
    from autoconn.export import tlens
    return tlens


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reverse", "sort", "parity"])
def test_transformer_lens_export_runs_like_the_runtime(tmp_path: Path, name: str):
    tlens = _hooked()
    from autoconn.export.numpy_model import load

    entry = Library(LIBRARY).get(name)
    folder = tlens.export_transformer_lens(name, tmp_path / name, LIBRARY)
    model = tlens.load_hooked(folder)
    assert type(model).__name__ == "HookedTransformer"
    inputs = random_inputs(entry, seed=1)
    outputs, logits = tlens.run_hooked(model, inputs, return_logits=True)
    assert outputs == entry.runtime().run(inputs)
    conn = load(folder)  # logits against the numpy forward, which equals the runtime's
    for seq, got in zip(inputs[:200], logits[:200]):
        want, _ = conn.forward(conn.encode([seq]))
        assert np.abs(want[0] - got).max() < 1e-5


@pytest.mark.slow
def test_transformer_lens_numerical_and_hooks(tmp_path: Path, numerical_library: Path):
    tlens = _hooked()
    entry = Library(numerical_library).get("frac_prevs")
    folder = tlens.export_transformer_lens("frac_prevs", tmp_path / "fp", numerical_library)
    model = tlens.load_hooked(folder)
    inputs = random_inputs(entry, seed=2)
    assert_same(tlens.run_hooked(model, inputs), entry.runtime().run(inputs), "numerical")
    import torch

    ids = torch.tensor([[0, 2, 3, 2]])  # BOS x y x (encoding from the spec)
    assert entry.spec.input_encoding["x"] == 2 and entry.spec.input_encoding[entry.spec.bos_token] == 0
    _, cache = model.run_with_cache(ids)
    assert cache["blocks.0.attn.hook_pattern"].shape[-1] == 4  # researchers get every hook


def test_cli_export_and_bad_usage(tmp_path: Path):
    runner = CliRunner()
    ok = runner.invoke(app, ["export", "parity", "--to", str(tmp_path / "p"), "--out", str(LIBRARY)])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "p" / "model.safetensors").exists() and (tmp_path / "p" / "config.json").exists()
    tl = runner.invoke(app, ["export", "parity", "--to", str(tmp_path / "t"), "--format", "transformer-lens",
                             "--out", str(LIBRARY)])
    assert tl.exit_code == 0 and (tmp_path / "t" / "hooked_transformer.safetensors").exists()
    assert runner.invoke(app, ["export", "nope", "--to", str(tmp_path / "n"), "--out", str(LIBRARY)]).exit_code == 2
    assert runner.invoke(app, ["export", "parity", "--to", str(tmp_path / "n"), "--format", "onnx"]).exit_code == 2
