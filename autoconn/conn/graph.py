"""The facts a reviewer needs about a compiled program that the weights alone do not keep: the RASP
graph (which SOp feeds which), where tracr put each operation (layer, attention head or MLP) and
which residual dimensions hold which SOp value. Stored as ``graph.json`` beside program.py.

These facts come from tracr's own compiler passes, so they need the program object — and
program.py is untrusted code that must never run in the host process. So they are computed
inside the sandbox worker, right where it compiles a candidate (``compile_program(...,
with_graph=True)`` runs ``compile_with_graph``), turned into plain JSON by ``graph_facts`` and
returned with the job; the host keeps them, size-bounded, for display only (never a verdict).

Standard library + tracr only: the worker imports this module.
"""

from __future__ import annotations

from typing import Any

GRAPH_FILE = "graph.json"
GRAPH_FORMAT = 1


def _json_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return repr(value)


def compile_with_graph(program: Any, vocab: Any, settings: Any) -> tuple[Any, Any, Any]:
    """tracr's compile_rasp_to_model, step by step, keeping the graph it builds.

    Returns (assembled model, graph, sources); the model is the one compile_program returns
    (same passes, same arguments)."""
    from tracr.compiler import (
        basis_inference,
        craft_graph_to_model,
        craft_model_to_transformer,
        expr_to_craft_graph,
        rasp_to_graph,
        validating,
    )
    from tracr.craft import bases
    from tracr.rasp import rasp

    vocab = set(vocab)
    for special in (settings.compiler_bos, settings.compiler_pad):
        if special in vocab:
            raise ValueError(f"Compiler token {special!r} must not be present in the vocab")
    unsupported = validating.static_validate(program)
    if unsupported:
        reasons = "\n".join(f"{e.expr.name}: {e.reason}" for e in unsupported)
        raise NotImplementedError("Unsupported RASP expressions:\n" + reasons)
    extracted = rasp_to_graph.extract_rasp_graph(program)
    graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
    basis_inference.infer_bases(graph, sink, vocab, settings.max_seq_len)
    expr_to_craft_graph.add_craft_components_to_rasp_graph(
        graph, bos_dir=bases.BasisDirection(rasp.tokens.label, settings.compiler_bos), mlp_exactness=settings.mlp_exactness)
    craft_model = craft_graph_to_model.craft_graph_to_model(graph, sources)
    model = craft_model_to_transformer.craft_model_to_transformer(
        craft_model=craft_model, graph=graph, sink=sink, max_seq_len=settings.max_seq_len, causal=settings.causal,
        compiler_bos=settings.compiler_bos, compiler_pad=settings.compiler_pad)
    return model, graph, sources


def _operation(expr: Any, rasp: Any) -> str:
    """A short human label: Map, SequenceMap, Aggregate, SelectorWidth, Select(EQ), tokens..."""
    if isinstance(expr, rasp.TokensType):
        return "tokens"
    if isinstance(expr, rasp.IndicesType):
        return "indices"
    if isinstance(expr, rasp.Select):
        return f"Select({expr.predicate.name})" if hasattr(expr.predicate, "name") else "Select"
    return type(expr).__name__


def graph_facts(model: Any, graph: Any, sources: Any) -> dict[str, Any]:
    """Plain JSON: nodes (op, encoding, layer, sublayer, head), edges, the residual layout.

    ``layer`` is the transformer layer (0-based) as in the weights' ``transformer/layer_N``;
    ``sublayer`` is "attn" or "mlp" (a SelectorWidth spans both: attn in ``layer``, its MLP in
    ``mlp_layer``); ``head`` is the head index inside the attention sublayer."""
    from tracr.compiler import craft_graph_to_model as c2m
    from tracr.compiler import nodes as N
    from tracr.craft import transformers
    from tracr.rasp import rasp

    allocation = dict(c2m._allocate_modules_to_layers(graph, sources))  # noqa: SLF001 - tracr's own placement
    # blocks per sublayer number, in the order craft_graph_to_model stacks them (heads in that order)
    per_sublayer: dict[int, list[tuple[str, Any]]] = {}
    for node_id, number in allocation.items():
        block = graph.nodes[node_id].get(N.MODEL_BLOCK)
        if isinstance(block, transformers.SeriesWithResiduals):
            per_sublayer.setdefault(number, []).append((node_id, block.blocks[0]))
            per_sublayer.setdefault(number + 1, []).append((node_id, block.blocks[1]))
        elif block is not None:
            per_sublayer.setdefault(number, []).append((node_id, block))
    # assemble.py puts the k-th non-empty sublayer into the next free slot of its kind
    slot_of: dict[int, int] = {}
    slot = -1  # index into attn0, mlp0, attn1, mlp1, ...
    for number in sorted(per_sublayer):
        want = number % 2
        slot += 1
        while slot % 2 != want:
            slot += 1
        slot_of[number] = slot
    placement: dict[Any, dict[str, Any]] = {}
    for number, blocks in sorted(per_sublayer.items()):
        layer, kind = divmod(slot_of[number], 2)
        head = 0
        for node_id, block in blocks:
            place = placement.setdefault(node_id, {})
            if kind == 0:
                heads = list(block.as_multi().heads()) if hasattr(block, "as_multi") else [block]
                place.update(layer=layer, sublayer="attn", head=head, heads=len(heads))
                head += len(heads)
            elif "layer" in place:  # the MLP half of a SelectorWidth
                place["mlp_layer"] = layer
            else:
                place.update(layer=layer, sublayer="mlp")
    residual = [str(label) for label in model.residual_labels]
    index_of = {label: i for i, label in enumerate(residual)}
    nodes = []
    for node_id, node in graph.nodes.items():
        expr = node[N.EXPR]
        is_sop = isinstance(expr, rasp.SOp)
        basis = [d for d in node.get(N.OUTPUT_BASIS, []) if str(d) in index_of] if is_sop else []
        dims = [index_of[str(d)] for d in basis]
        values = sorted((_json_value(v) for v in node.get(N.VALUE_SET, set())), key=repr) if is_sop else []
        entry = {
            "id": str(node_id),
            "op": _operation(expr, rasp),
            "kind": "sop" if is_sop else "selector",
            "encoding": rasp.get_encoding(expr).value if is_sop else None,
            "layer": None, "sublayer": None,
            "residual_dims": dims,
            "dim_values": [_json_value(d.value) for d in basis],  # the value each of those dims stands for
            "values": values[:64],
        }
        if isinstance(expr, rasp.Select):
            entry["predicate"] = getattr(expr.predicate, "name", None)
        entry.update(placement.get(node_id, {}))
        nodes.append(entry)
    edges = [{"from": str(a), "to": str(b)} for a, b in graph.edges]
    layout = []
    for i, label in enumerate(residual):
        name, _, value = label.partition(":")
        layout.append({"index": i, "sop": name, "value": value if _ else None})
    return {
        "format": GRAPH_FORMAT,
        "nodes": nodes,
        "edges": edges,
        "output": next((str(n) for n in graph.nodes if graph.out_degree(n) == 0), None),
        "sources": [str(s[N.ID]) for s in sources],
        "residual": layout,
    }


# -- recording graph.json for library entries whose program is one of our trusted references ----
