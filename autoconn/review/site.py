"""``autoconn review``: a static HTML site of the library (works from file://, no server).

One page per CoNN — program (pygments), provenance, the RASP graph with tracr's placement,
the residual stream layout and sizes, verification by length, and for a handful of example
inputs every attention head's pattern and the decoded value of every SOp at every position —
and an index page (the ``autoconn list`` table, filterable by name and output kind).

Everything is computed from what the library stores: weights.npz, conn.json and graph.json
(program.py is displayed, never executed). The forward pass is autoconn.export.numpy_model,
which the export tests hold equal to ConnRuntime.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from autoconn.conn.artifact import Library, LibraryEntry
from autoconn.conn.graph import GRAPH_FILE
from autoconn.export.numpy_model import NumpyConn
from autoconn.export.safetensors_export import build_config, load_weights
from autoconn.review import svg
from autoconn.review.verified import verified_summary

EXAMPLES = 5
NO_GRAPH = "graph not recorded; re-register to add it"


def _env() -> Environment:
    env = Environment(loader=PackageLoader("autoconn.review", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else ("?" if v is None else str(v))
    return env


def highlight(source: str) -> tuple[str, str]:
    from pygments import highlight as _highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    formatter = HtmlFormatter(cssclass="highlight", linenos=False)
    return _highlight(source, PythonLexer(), formatter), formatter.get_style_defs(".highlight")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def example_inputs(entry: LibraryEntry, limit: int) -> list[list[Any]]:
    """A few inputs of different lengths inside the verified length (deterministic per CoNN)."""
    spec = entry.spec
    rng = random.Random(entry.name)
    longest = max(1, min(limit, spec.max_seq_len))
    lengths = sorted({max(1, round(longest * f)) for f in (0.4, 0.6, 0.8, 1.0)} | {min(3, longest)})
    while len(lengths) < EXAMPLES:
        lengths.append(rng.randint(1, longest))
    return [[rng.choice(spec.vocab) for _ in range(n)] for n in lengths[:EXAMPLES]]


def _residual_groups(layout: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for dim in layout:
        if groups and groups[-1]["sop"] == dim["sop"] and groups[-1]["start"] + groups[-1]["size"] == dim["index"]:
            groups[-1]["size"] += 1
            groups[-1]["values"].append(dim["value"])
        else:
            groups.append({"sop": dim["sop"], "start": dim["index"], "size": 1, "values": [dim["value"]]})
    return groups


def _live_heads(weights: dict[str, np.ndarray], layers: int, heads: int, key_size: int) -> list[tuple[int, int]]:
    live = []
    for layer in range(layers):
        q = weights[f"transformer/layer_{layer}/attn/query/w"]
        o = weights[f"transformer/layer_{layer}/attn/linear/w"]
        for head in range(heads):
            cols = slice(head * key_size, (head + 1) * key_size)
            if np.any(q[:, cols]) and np.any(o[cols, :]):
                live.append((layer, head))
    return live


def _decode_sops(graph: dict[str, Any], resid: np.ndarray) -> list[dict[str, Any]]:
    """Each SOp's value at each position, read off the final residual stream (tracr never
    overwrites a subspace, so every SOp's value is still there at the end)."""
    rows = []
    for node in graph["nodes"]:
        dims = node.get("residual_dims") or []
        if node["kind"] != "sop" or not dims:
            continue
        block = resid[:, dims]
        if node.get("encoding") == "numerical" or len(dims) == 1 and node.get("dim_values") in ([None], None):
            cells = [_fmt(float(v)) for v in block[:, 0]]
        else:
            values = node.get("dim_values") or list(range(len(dims)))
            cells = []
            for row in block:
                best = int(np.argmax(row))
                cells.append(_fmt(values[best]) if row[best] > 0.5 else "·")
        place = svg._placement(node) or "input"  # noqa: SLF001
        rows.append({"id": node["id"], "op": node["op"], "place": place, "cells": cells,
                     "order": (node.get("mlp_layer", node.get("layer")) if node.get("layer") is not None else -1,
                               node.get("sublayer") != "attn", node["id"])})
    return sorted(rows, key=lambda r: r["order"])


def live_model(config: dict[str, Any], weights: dict[str, np.ndarray], graph: dict[str, Any] | None,
               live: list[tuple[int, int]], head_names: dict[tuple[int, int], str]) -> dict[str, Any]:
    """What the page's own forward pass (review.js, in the browser) needs: the weights as base64
    float32 with empty sublayers and dead MLP units dropped (exact: they add 0), the codecs, and
    the graph's decoding facts. Lets a reader type any input, not only the pre-rendered ones."""
    import base64

    def pack(array: np.ndarray) -> dict[str, Any]:
        array = np.ascontiguousarray(array, dtype="<f4")
        return {"shape": list(array.shape), "b64": base64.b64encode(array.tobytes()).decode("ascii")}

    layers = []
    for layer in range(config["architecture"]["n_layers"]):
        a, m = f"transformer/layer_{layer}/attn", f"transformer/layer_{layer}/mlp"
        item: dict[str, Any] = {"attn": None, "mlp": None}
        if np.any(weights[f"{a}/linear/w"]) or np.any(weights[f"{a}/linear/b"]):
            item["attn"] = {part: pack(weights[f"{a}/{part}"]) for part in
                            ("query/w", "query/b", "key/w", "key/b", "value/w", "value/b", "linear/w", "linear/b")}
        w1, b1, w2, b2 = (weights[f"{m}/{n}"] for n in ("linear_1/w", "linear_1/b", "linear_2/w", "linear_2/b"))
        alive = (np.any(w1, axis=0) | (b1 != 0)) & np.any(w2, axis=1)
        if alive.any() or np.any(b2):
            item["mlp"] = {"w1": pack(w1[:, alive]), "b1": pack(b1[alive]), "w2": pack(w2[alive, :]), "b2": pack(b2)}
        layers.append(item)
    nodes = []
    for node in (graph or {}).get("nodes", []):
        if node["kind"] == "sop" and node.get("residual_dims"):
            nodes.append({"id": node["id"], "place": svg._placement(node) or "input", "dims": node["residual_dims"],  # noqa: SLF001
                          "values": node.get("dim_values"), "numerical": node.get("encoding") == "numerical",
                          "order": [node.get("mlp_layer", node.get("layer")) if node.get("layer") is not None else -1,
                                    0 if node.get("sublayer") == "attn" else 1, node["id"]]})
    return {
        "encoding": [[str(token), index] for token, index in config["input_encoding"]],
        "bos": config["bos_token"], "pad": config["pad_token"], "max_len": config["max_seq_len"],
        "verified_length": config["verified_length"], "kind": config["output"]["kind"],
        "decoding": [str(v) for v in config["output"]["decoding"]],
        "heads": config["architecture"]["n_heads"], "d_head": config["architecture"]["d_head"],
        "causal": config["architecture"]["attention"] == "causal",
        "token_embed": pack(weights["token_embed/embeddings"]), "pos_embed": pack(weights["pos_embed/embeddings"]),
        "unembed": pack(weights["unembed"]), "layers": layers,
        "live_heads": [[layer, head, head_names.get((layer, head))] for layer, head in live],
        "sops": sorted(nodes, key=lambda n: (n["order"][0], n["order"][1], n["order"][2])),
    }


def conn_page_data(entry: LibraryEntry) -> dict[str, Any]:
    meta = entry.meta
    weights = load_weights(entry)
    config = build_config(entry, weights)
    conn = NumpyConn(config, weights)
    spec = entry.spec
    verified = verified_summary(meta)
    graph_path = entry.path / GRAPH_FILE
    graph = json.loads(graph_path.read_text(encoding="utf-8")) if graph_path.exists() else None
    source = entry.program_path.read_text(encoding="utf-8") if entry.program_path.exists() else "# program.py is missing"
    program_html, pygments_css = highlight(source)
    head_names: dict[tuple[int, int], str] = {}
    if graph:
        for node in graph["nodes"]:
            if node.get("sublayer") == "attn":
                for h in range(node.get("heads", 1)):
                    head_names[(node["layer"], node.get("head", 0) + h)] = node["id"]
    live = _live_heads(weights, spec.num_layers, spec.num_heads, spec.key_size)
    examples = []
    for index, tokens in enumerate(example_inputs(entry, verified["length"] or spec.max_seq_len)):
        ids = conn.encode([tokens])
        logits, cache = conn.forward(ids, collect=True)
        output = conn.decode(logits, [tokens])[0]
        labels = ["BOS"] + [str(t) for t in tokens]
        maps = []
        for layer, head in live:
            pattern = cache[f"layer_{layer}/attn/pattern"][0, head]
            name = head_names.get((layer, head))
            title = f"layer {layer}, head {head}" + (f" — {name}" if name else "")
            maps.append({"title": title, "svg": Markup(svg.heatmap_svg(pattern, labels, title))})
        final = cache[f"layer_{spec.num_layers - 1}/mlp/resid"][0]
        examples.append({"index": index, "tokens": labels, "input": " ".join(labels[1:]),
                         "output": [_fmt(v) for v in output], "heatmaps": maps,
                         "sops": _decode_sops(graph, final) if graph else []})
    provenance = meta.get("provenance") or {}
    groups = _residual_groups(graph["residual"]) if graph else []
    width = int(weights["token_embed/embeddings"].shape[1])
    lengths = []
    oracle = verified.get("oracle") or {}
    for row in oracle.get("lengths") or []:
        lengths.append(row)
    return {
        "name": entry.name,
        "meta": meta,
        "description": meta.get("description") or "",
        "program_html": Markup(program_html),
        "pygments_css": Markup(pygments_css),
        "provenance": provenance,
        "graph_svg": Markup(svg.graph_svg(graph)) if graph else None,
        "graph_note": (graph or {}).get("recorded_from"),
        "no_graph": NO_GRAPH,
        "graph_nodes": sorted((graph or {}).get("nodes", []),
                              key=lambda n: (svg._column(n) if n["kind"] != "selector" else 99, n["id"])),
        "residual_groups": groups,
        "residual_svg": Markup(svg.residual_bar_svg(groups, width)) if groups else None,
        "sizes": {"layers": spec.num_layers, "heads": spec.num_heads, "d_model": width, "d_head": spec.key_size,
                  "d_mlp": spec.mlp_hidden, "parameters": config["parameters"], "n_ctx": spec.max_seq_len + 1,
                  "live_heads": len(live), "query_scale": config["architecture"]["query_scale"]},
        "verified": verified,
        "verified_pct": 100 * (verified["length"] or 0) / max(1, verified["compiled"] or spec.max_seq_len),
        "oracle_lengths": lengths,
        "examples": examples,
        "spec": spec,
        "live_json": Markup(json.dumps(live_model(config, weights, graph, live, head_names)).replace("</", "<\\/")),
        "vocab_hint": " ".join(str(t) for t in spec.vocab),
    }


def index_rows(library: Library) -> list[dict[str, Any]]:
    rows = []
    for name, item in library.read_index()["conns"].items():
        meta_path = library.root / name / "conn.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        verified = verified_summary(meta) if meta else {"length": item.get("verified_length"), "how": item.get("verified_how")}
        rows.append({
            "name": name, "description": item.get("description") or "", "output_kind": item.get("output_kind") or "?",
            "output_shape": item.get("output_shape") or "?", "max_seq_len": item.get("max_seq_len"),
            "verified_length": item.get("verified_length", verified.get("length")),
            "verified_how": item.get("verified_how", verified.get("how")),
            "layers": item.get("layers"), "parameters": item.get("parameters"),
            "heldout": (f"{100 * item['heldout_accuracy']:.0f}% of {item.get('heldout_examples')}"
                        if item.get("heldout_accuracy") is not None else "?"),
            "inducer": item.get("inducer") or "?", "has_page": meta_path.exists(),
            "has_graph": (library.root / name / GRAPH_FILE).exists(),
        })
    return rows


def build_site(library_dir: str | Path, out_dir: str | Path) -> Path:
    """Writes out_dir/index.html and out_dir/conns/NAME.html; returns the index path."""
    library = Library(library_dir)
    out = Path(out_dir)
    (out / "conns").mkdir(parents=True, exist_ok=True)
    env = _env()
    rows = index_rows(library)
    kinds = sorted({r["output_kind"] for r in rows})
    for row in rows:
        if not row["has_page"]:
            continue
        data = conn_page_data(library.get(row["name"]))
        html = env.get_template("conn.html.j2").render(**data, library=str(library.root))
        (out / "conns" / f"{row['name']}.html").write_text(html, encoding="utf-8")
    index = out / "index.html"
    page = env.get_template("index.html.j2").render(rows=rows, kinds=kinds, library=str(library.root))
    index.write_text(page, encoding="utf-8")
    return index
