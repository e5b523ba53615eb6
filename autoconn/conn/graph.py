"""The facts a reviewer needs about a compiled program that the weights alone do not keep: the RASP
graph (which SOp feeds which), where tracr put each operation (layer, attention head or MLP) and
which residual dimensions hold which SOp value. Stored as ``graph.json`` beside program.py.

These facts come from tracr's own compiler passes, so they need the program object — and
program.py is untrusted code that must never run in the host process. Two trusted ways in:

* inside the sandbox worker, right where it compiles a candidate: ``compile_with_graph`` is a
  drop-in for ``autoconn.conn.compile.compile_program`` that also returns the graph, and
  ``graph_facts(model, graph, sources)`` turns it into plain JSON for the job result (the lead wires
  this into ``autoconn/sandbox/worker.py``; see the module ``__main__`` below for the record step);
* for library entries whose program is byte-identical to one of our own trusted programs in
  ``rule_examples/reference/`` (checked by sha256 against conn.json's ``source_sha256``), the host
  compiles the trusted file, checks that the weights it gets equal the stored ones, and writes
  graph.json (``python -m autoconn.conn.graph generated_conns``).

Standard library + tracr only in the functions the worker would call.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
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
    from tracr.compiler import (basis_inference, craft_graph_to_model, craft_model_to_transformer,
                                expr_to_craft_graph, rasp_to_graph, validating)
    from tracr.craft import bases
    from tracr.rasp import rasp

    vocab = set(vocab)
    for special in (settings.compiler_bos, settings.compiler_pad):
        if special in vocab:
            raise ValueError(f"Compiler token {special!r} must not be present in the vocab")
    unsupported = validating.static_validate(program)
    if unsupported:
        raise NotImplementedError("Unsupported RASP expressions:\n" + "\n".join(f"{e.expr.name}: {e.reason}" for e in unsupported))
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

def _strip_header(program_text: str) -> str:
    """program.py = a header docstring + the source as registered (see artifact.render_program)."""
    if program_text.startswith('"""'):
        end = program_text.find('"""', 3)
        body = program_text[end + 3:].lstrip("\n")
        return body
    return program_text


def trusted_reference(entry_meta: dict[str, Any], reference_dir: Path) -> Path | None:
    """Our own program in rule_examples/reference/ whose source is byte-identical to the entry's."""
    wanted = entry_meta.get("source_sha256")
    if not wanted or not reference_dir.is_dir():
        return None
    for candidate in sorted(reference_dir.glob("*.py")):
        if hashlib.sha256(candidate.read_text(encoding="utf-8").encode("utf-8")).hexdigest() == wanted:
            return candidate
    return None


def record_from_reference(entry_path: Path, reference: Path) -> dict[str, Any]:
    """Compiles OUR trusted reference program (never the entry's program.py), checks the weights
    equal the stored ones, and writes graph.json. Raises ValueError when they differ."""
    import numpy as np

    from autoconn.conn.compile import CompileSettings
    from autoconn.conn.runtime import extract

    meta = json.loads((entry_path / "conn.json").read_text(encoding="utf-8"))
    namespace: dict[str, Any] = {"__name__": "reference"}
    exec(compile(reference.read_text(encoding="utf-8"), str(reference), "exec"), namespace)  # noqa: S102 - our own trusted file
    program = namespace["program"]
    settings = CompileSettings.from_json(meta["compiler"])
    model, graph, sources = compile_with_graph(program, meta["vocab"], settings)
    # entries registered before the runtime sharpened attention hold unsharpened queries: both count
    candidates = [extract(model, settings.max_seq_len, settings.causal, sharpen=sharpen)[1] for sharpen in (True, False)]
    with np.load(entry_path / "weights.npz") as stored:
        names = set(stored.files)
        if not any(names == set(weights) and all(np.allclose(stored[k], weights[k], atol=1e-5) for k in names)
                   for weights in candidates):
            raise ValueError(f"{entry_path.name}: weights compiled from {reference} differ from the stored ones; not recording its graph")
    facts = graph_facts(model, graph, sources)
    facts["recorded_from"] = f"rule_examples/reference/{reference.name} (sha256 equal to the entry's source)"
    (entry_path / GRAPH_FILE).write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
    return facts


def main(argv: list[str] | None = None) -> int:
    """python -m autoconn.conn.graph [LIBRARY] [REFERENCE_DIR]"""
    args = list(sys.argv[1:] if argv is None else argv)
    library = Path(args[0] if args else "generated_conns")
    reference_dir = Path(args[1] if len(args) > 1 else "rule_examples/reference")
    for meta_path in sorted(library.glob("*/conn.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        reference = trusted_reference(meta, reference_dir)
        if reference is None:
            print(f"{meta_path.parent.name}: not one of our reference programs; its graph comes with re-registering")
            continue
        try:
            facts = record_from_reference(meta_path.parent, reference)
        except ValueError as error:
            print(str(error))
            continue
        print(f"{meta_path.parent.name}: graph.json from {reference.name} ({len(facts['nodes'])} nodes)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
