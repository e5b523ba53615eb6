"""Pictures as inline SVG, written by hand: the RASP graph laid out by tracr's own placement
(one column per sublayer, so the picture *is* the model's schedule), attention heatmaps and the
residual-stream bar. No system binary (graphviz's ``dot``) and no plotting library needed, the
output is small, crisp at any zoom, and its elements are in the DOM for tests and tooltips."""

from __future__ import annotations

from html import escape
from typing import Any

NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 184, 58, 36, 22, 16
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def _column(node: dict[str, Any]) -> float:
    """0 for inputs; then attn of layer L at 1+2L, its MLP at 2+2L."""
    if node["op"] in ("tokens", "indices") or node.get("layer") is None:
        return 0.0
    slot = 2 * int(node["layer"]) + (1 if node.get("sublayer") == "attn" else 2)
    if node.get("mlp_layer") is not None:  # SelectorWidth: its value lands after the MLP half
        slot = 2 * int(node["mlp_layer"]) + 2
    return float(slot)


def graph_svg(graph: dict[str, Any]) -> str:
    nodes = {n["id"]: n for n in graph["nodes"]}
    consumers: dict[str, list[str]] = {}
    for edge in graph["edges"]:
        consumers.setdefault(edge["from"], []).append(edge["to"])
    column: dict[str, float] = {}
    for node_id, node in nodes.items():
        if node["kind"] != "selector":
            column[node_id] = _column(node)
    for node_id, node in nodes.items():  # a selector sits half a column before the head that uses it
        if node["kind"] == "selector":
            users = [column.get(u, 1.0) for u in consumers.get(node_id, [])]
            column[node_id] = (min(users) if users else 1.0) - 0.5
    columns = sorted(set(column.values()))
    col_index = {c: i for i, c in enumerate(columns)}
    rows: dict[float, list[str]] = {}
    for node_id in sorted(nodes, key=lambda n: (column[n], n)):
        rows.setdefault(column[node_id], []).append(node_id)
    pos: dict[str, tuple[float, float]] = {}
    for c, ids in rows.items():
        for r, node_id in enumerate(ids):
            pos[node_id] = (PAD + col_index[c] * (NODE_W + COL_GAP), PAD + 24 + r * (NODE_H + ROW_GAP))
    width = PAD * 2 + len(columns) * (NODE_W + COL_GAP) - COL_GAP
    height = PAD + 24 + max(len(ids) for ids in rows.values()) * (NODE_H + ROW_GAP)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="rasp-graph" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="RASP computation graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for c in columns:  # column headings: the sublayer each column is
        x = PAD + col_index[c] * (NODE_W + COL_GAP) + NODE_W / 2
        if c == 0:
            label = "inputs"
        elif c != int(c):
            label = "selector"
        else:
            layer, kind = divmod(int(c) - 1, 2)
            label = f"layer {layer} · {'attention' if kind == 0 else 'MLP'}"
        parts.append(f'<text x="{x}" y="{PAD + 8}" text-anchor="middle" class="col-head">{escape(label)}</text>')
    lanes_top = height - PAD  # edges that skip a column run in lanes below the nodes, never behind one
    lane = 0
    for edge in graph["edges"]:
        if edge["from"] not in pos or edge["to"] not in pos:
            continue
        (x1, y1), (x2, y2) = pos[edge["from"]], pos[edge["to"]]
        sx, sy, tx, ty = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
        skipped = col_index[column[edge["to"]]] - col_index[column[edge["from"]]] > 1
        if not skipped:
            mid = (sx + tx) / 2
            parts.append(f'<path class="edge" d="M{sx},{sy} C{mid},{sy} {mid},{ty} {tx},{ty}" marker-end="url(#arrow)"/>')
            continue
        ly = lanes_top + 10 + lane * 10
        lane += 1
        down, up = sx + COL_GAP / 2, tx - COL_GAP / 2
        parts.append(f'<path class="edge long" d="M{sx},{sy} C{down},{sy} {sx},{ly} {down},{ly} L{up},{ly} '
                     f'C{tx},{ly} {up},{ty} {tx},{ty}" marker-end="url(#arrow)"/>')
    if lane:
        old = height
        height += 10 + lane * 10
        parts[0] = parts[0].replace(f'height="{old}" viewBox="0 0 {width} {old}"',
                                    f'height="{height}" viewBox="0 0 {width} {height}"')
    for node_id, node in nodes.items():
        x, y = pos[node_id]
        cls = "node selector" if node["kind"] == "selector" else ("node input" if column[node_id] == 0 else "node sop")
        if node.get("id") == graph.get("output"):
            cls += " output"
        place = _placement(node)
        enc = node.get("encoding") or ""
        title = f"{node_id}: {node['op']}" + (f", {enc}" if enc else "") + (f", {place}" if place else "")
        op_text = node["op"] + (" · " + enc if enc else "")
        place_text = place or ("input" if column[node_id] == 0 else "inside the head that uses it")
        parts.append(f'<g class="{cls}" data-node="{escape(node_id)}"><title>{escape(title)}</title>'
                     f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
                     f'<text x="{x + 10}" y="{y + 18}" class="n-name">{escape(_short(node_id, 24))}</text>'
                     f'<text x="{x + 10}" y="{y + 34}" class="n-op">{escape(_short(op_text, 30))}</text>'
                     f'<text x="{x + 10}" y="{y + 50}" class="n-place">{escape(place_text)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _placement(node: dict[str, Any]) -> str:
    if node.get("layer") is None:
        return ""
    if node.get("sublayer") == "attn":
        text = f"L{node['layer']} attn head {node.get('head', 0)}"
        if node.get("mlp_layer") is not None:
            text += f" + L{node['mlp_layer']} MLP"
        return text
    return f"L{node['layer']} MLP"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def heatmap_svg(pattern: Any, labels: list[str], title: str, cell: int = 26) -> str:
    """Rows: query positions, columns: key positions, darker = more attention."""
    n = len(labels)
    left, top = 56, 56
    size_w, size_h = left + n * cell + 8, top + n * cell + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="{size_w}" height="{size_h}" '
             f'viewBox="0 0 {size_w} {size_h}" role="img" aria-label="{escape(title)}">']
    for i, label in enumerate(labels):
        parts.append(f'<text x="{left - 6}" y="{top + i * cell + cell * 0.65}" text-anchor="end" class="ax">'
                     f'{escape(_short(label, 6))}</text>')
        parts.append(f'<text x="{left + i * cell + cell / 2}" y="{top - 8}" text-anchor="start" class="ax" '
                     f'transform="rotate(-45 {left + i * cell + cell / 2} {top - 8})">{escape(_short(label, 6))}</text>')
    for q in range(n):
        for k in range(n):
            v = float(pattern[q][k])
            shade = int(round(255 * (1 - v)))
            fill = f"rgb({shade},{int(round(255 - v * 140))},255)"
            parts.append(f'<rect class="cell" x="{left + k * cell}" y="{top + q * cell}" width="{cell - 1}" height="{cell - 1}" '
                         f'fill="{fill}"><title>query {q} ({escape(labels[q])}) → key {k} ({escape(labels[k])}): '
                         f'{v:.3f}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def residual_bar_svg(groups: list[dict[str, Any]], width_total: int, width: int = 900) -> str:
    """One coloured segment per SOp's subspace, in residual order."""
    if not width_total:
        return ""
    scale = width / width_total
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="residual-bar" width="{width}" height="34" '
             f'viewBox="0 0 {width} 34">']
    for i, group in enumerate(groups):
        x, w = group["start"] * scale, max(1.0, group["size"] * scale)
        parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="22" fill="{PALETTE[i % len(PALETTE)]}">'
                     f'<title>{escape(group["sop"])}: dims {group["start"]}–{group["start"] + group["size"] - 1}</title></rect>')
        if w > 40:
            parts.append(f'<text x="{x + 3:.1f}" y="15" class="bar-label">{escape(_short(group["sop"], int(w / 7)))}</text>')
    parts.append(f'<text x="0" y="33" class="ax">0</text>'
                 f'<text x="{width}" y="33" text-anchor="end" class="ax">{width_total - 1}</text></svg>')
    return "".join(parts)
