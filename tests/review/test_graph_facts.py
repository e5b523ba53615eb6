"""graph.json facts: the placement we report is where the weights really write each SOp."""

from __future__ import annotations

import numpy as np
import pytest
from tracr.rasp import rasp

from autoconn.conn.compile import compile_program, default_settings
from autoconn.conn.graph import compile_with_graph, graph_facts
from autoconn.conn.runtime import extract
from tests.conn import programs


def mlp_first() -> rasp.SOp:
    """First block an MLP, then an attention head: exercises assemble's slot skipping."""
    shifted = rasp.categorical(rasp.Map(lambda i: i + 1, rasp.indices)).named("next_index")
    return rasp.categorical(rasp.Aggregate(rasp.Select(rasp.indices, shifted, rasp.Comparison.EQ),
                                           rasp.tokens)).named("prev_token")


CASES = {
    "reverse": (programs.reverse, ["a", "b", "c"]),
    "sort_unique": (programs.sort_unique, [1, 2, 3]),
    "frac_prevs": (programs.frac_prevs, ["x", "y"]),
    "parity": (programs.parity, [0, 1]),
    "mlp_first": (mlp_first, ["a", "b"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_sop_is_written_by_the_sublayer_we_name(case: str):
    make, vocab = CASES[case]
    settings = default_settings(6)
    model, graph, sources = compile_with_graph(make(), vocab, settings)
    _, reference = extract(compile_program(make(), vocab, settings), 6)
    _, weights = extract(model, 6)
    assert set(weights) == set(reference) and all(np.allclose(weights[k], reference[k]) for k in weights)
    facts = graph_facts(model, graph, sources)
    key = model.model_config.key_size
    assert len(facts["residual"]) == weights["token_embed/embeddings"].shape[1]
    assert facts["output"] in {n["id"] for n in facts["nodes"]}
    placed = [n for n in facts["nodes"] if n["kind"] == "sop" and n["layer"] is not None]
    assert placed
    for node in placed:
        dims = node["residual_dims"]
        assert dims and len(node["dim_values"]) == len(dims)
        if node["sublayer"] == "attn" and node.get("mlp_layer") is None:
            rows = slice(node["head"] * key, (node["head"] + node["heads"]) * key)
            out = weights[f"transformer/layer_{node['layer']}/attn/linear/w"][rows][:, dims]
        else:
            layer = node.get("mlp_layer", node["layer"])
            out = weights[f"transformer/layer_{layer}/mlp/linear_2/w"][:, dims]
        assert np.any(out), f"{node['id']}: nothing writes its dims in the sublayer we name"
    edges = {(e["from"], e["to"]) for e in facts["edges"]}
    assert all(a in {n["id"] for n in facts["nodes"]} for a, _ in edges)


def test_mlp_first_program_is_placed_in_layer_0_mlp_then_layer_1_attention():
    model, graph, sources = compile_with_graph(mlp_first(), ["a", "b"], default_settings(4))
    facts = {n["id"].rsplit("_", 1)[0]: n for n in graph_facts(model, graph, sources)["nodes"]}  # tracr suffixes ids
    assert (facts["next_index"]["layer"], facts["next_index"]["sublayer"]) == (0, "mlp")
    assert (facts["prev_token"]["layer"], facts["prev_token"]["sublayer"]) == (1, "attn")
