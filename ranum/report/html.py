"""Self-contained HTML rendering of a check report: summary, findings table, one graph per finding.

Each finding gets an inline SVG picture of its neighbourhood: the operators that feed the
vulnerable node, back to the inputs and weights (at most ``MAX_NODES`` operators, nearest first),
laid out in layers from left to right, every node annotated with the interval of its output, the
vulnerable node and the edge of its invalid operand highlighted.

Invariants: no network access and no external resource (inline CSS and SVG only, no script); every
text from the model is HTML-escaped.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from html import escape

from ranum.detect import Finding, Report
from ranum.graph.model import Node
from ranum.report.sarif import fix_hint

__all__ = ["MAX_NODES", "render_html"]

MAX_NODES = 16
_W, _H, _GAP_X, _GAP_Y, _PAD = 190, 48, 60, 18, 16

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}tr.certain td{background:#fde8e8}code{background:#f6f6f6;padding:0 .2rem}
.summary span{display:inline-block;margin-right:1.5rem}.finding{margin:2rem 0;border-top:1px solid #ddd}
svg text{font-family:ui-monospace,monospace;font-size:11px}svg .op{font-weight:bold}
.graph{overflow-x:auto;border:1px solid #eee}.hint{color:#555}
"""


@dataclass(frozen=True)
class _Box:
    key: str
    title: str
    label: str
    interval: str
    layer: int
    kind: str  # "op" | "input" | "weight" | "target" | "more"


def render_html(report: Report) -> str:
    """The report as one HTML document."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ranum check {escape(report.model)}</title><style>{_CSS}</style></head><body>",
        f"<h1>ranum check <code>{escape(report.model)}</code></h1>",
        _summary(report), _table(report),
    ]
    parts += [_section(report, i, f) for i, f in enumerate(report.findings, 1)]
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary(report: Report) -> str:
    certain = sum(1 for f in report.findings if f.certain)
    unsupported = ", ".join(report.unsupported_ops) or "none"
    skipped = len(report.not_analysed_nodes)
    analysed = f"{report.nodes - skipped} of {report.nodes}" if skipped else f"{report.nodes}"
    analysed += " nodes analysed"
    items = [analysed, f"{len(report.findings)} findings ({certain} certain)",
             f"unsupported ops: {unsupported}", f"{report.seconds:.3f} s"]
    spans = "".join(f"<span>{escape(t)}</span>" for t in items)
    warnings = "".join(f"<li>{escape(w)}</li>" for w in report.warnings)
    return (f'<section class="summary" id="summary"><h2>Summary</h2><p>{spans}</p>'
            + (f"<h3>Warnings</h3><ul>{warnings}</ul>" if warnings else "") + "</section>")


def _table(report: Report) -> str:
    if not report.findings:
        return '<p id="findings">No finding: no operator can receive an invalid input under these ranges.</p>'
    head = "".join(f"<th>{c}</th>" for c in ("#", "source", "node", "op", "hazard", "kind", "operand interval",
                                              "invalid", "certain"))
    rows = []
    for i, f in enumerate(report.findings, 1):
        source = "" if f.source is None else f"<code>{escape(f.source.short())}</code> {escape(f.source.code)}"
        cells = [f'<a href="#finding-{i}">{i}</a>', source, escape(f.node), escape(f.op_type), escape(f.hazard),
                 escape(f.kind), escape(_interval(*f.interval)), escape(f.invalid), "yes" if f.certain else "may"]
        rows.append(f'<tr class="{"certain" if f.certain else "possible"}">'
                    + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<h2>Findings</h2><table id="findings"><tr>{head}</tr>{"".join(rows)}</table>'


def _section(report: Report, i: int, f: Finding) -> str:
    where = "" if f.source is None else (f"<p>at <code>{escape(f.source.short())}</code>: "
                                         f"<code>{escape(f.source.code)}</code></p>")
    return (f'<section class="finding" id="finding-{i}"><h3>{i}. {escape(f.op_type)} '
            f"<code>{escape(f.node)}</code>: {escape(f.hazard)}</h3>{where}"
            f"<p>operand <code>{escape(f.operand)}</code> lies in {escape(_interval(*f.interval))}; "
            f"invalid range {escape(f.invalid)} ({'certain' if f.certain else 'possible'}, {escape(f.kind)})</p>"
            f'<p class="hint">Fix: {escape(fix_hint(f.hazard_id))}</p>'
            f'<div class="graph">{neighbourhood_svg(report, f)}</div></section>')


def neighbourhood_svg(report: Report, finding: Finding) -> str:
    """Inline SVG of the operators feeding ``finding``'s node, back to inputs and weights."""
    boxes, edges = _neighbourhood(report, finding)
    columns: dict[int, list[_Box]] = {}
    for box in boxes.values():
        columns.setdefault(box.layer, []).append(box)
    places = {}
    for layer, column in columns.items():
        for row, box in enumerate(column):
            places[box.key] = (_PAD + layer * (_W + _GAP_X), _PAD + row * (_H + _GAP_Y))
    width = _PAD * 2 + (max(columns) + 1) * (_W + _GAP_X) - _GAP_X
    height = _PAD * 2 + max(len(c) for c in columns.values()) * (_H + _GAP_Y) - _GAP_Y
    body = [_edge(places[a], places[b], hot) for a, b, hot in edges if a in places and b in places]
    body += [_box(boxes[k], *places[k]) for k in boxes]
    marker = ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
              'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="neighbourhood" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="graph around {escape(finding.node)}">'
            + marker + "".join(body) + "</svg>")


def _neighbourhood(report: Report, finding: Finding) -> tuple[dict[str, _Box], list[tuple[str, str, bool]]]:
    """Boxes (ops, inputs, weights) and edges of the backward cone of the finding's node."""
    graph = report.analysis.graph
    producers = {out: node for node in graph.nodes for out in node.outputs if out}
    target = next((n for n in report.analysis.run.nodes if n.name == finding.node), None)
    if target is None:
        return {"t": _Box("t", finding.node, finding.op_type, "", 0, "target")}, []
    cone = _cone(target, producers)
    roles = {a.tensor: a.role for a in report.analysis.assumptions}
    depth = _depths(cone, producers, {n.name: i for i, n in enumerate(graph.nodes)})
    boxes: dict[str, _Box] = {}
    edges: list[tuple[str, str, bool]] = []
    for node in cone:
        key = f"n:{node.name}"
        kind = "target" if node is target else "op"
        boxes[key] = _Box(key, node.name, node.op_type, self_interval(report, node), depth[node.name], kind)
        for name in node.inputs:
            source = _input_box(name, node, producers, cone, roles, report, boxes)
            if source is not None:
                edges.append((source, key, node is target and name == finding.operand))
    return boxes, edges


def _input_box(name: str, node: Node, producers: dict[str, Node], cone: list[Node], roles: dict[str, str],
               report: Report, boxes: dict[str, _Box]) -> str | None:
    """The key of the box feeding ``name`` into ``node`` (created when needed), None for constants."""
    producer = producers.get(name)
    if producer is not None:
        if producer in cone:
            return f"n:{producer.name}"
        key = f"more:{producer.name}"
        boxes.setdefault(key, _Box(key, producer.name, "...", _tensor_interval(report, name), 0, "more"))
        return key
    role = roles.get(name)
    if role not in ("input", "weight"):
        return None
    key = f"t:{name}"
    boxes.setdefault(key, _Box(key, name, name, _tensor_interval(report, name), 0, role))
    return key


def _cone(target: Node, producers: dict[str, Node]) -> list[Node]:
    """Up to MAX_NODES operators feeding ``target`` (breadth-first, nearest first)."""
    seen = {target.name}
    cone = [target]
    queue = deque([target])
    while queue and len(cone) < MAX_NODES:
        for name in queue.popleft().inputs:
            producer = producers.get(name)
            if producer is not None and producer.name not in seen and len(cone) < MAX_NODES:
                seen.add(producer.name)
                cone.append(producer)
                queue.append(producer)
    return cone


def _depths(cone: list[Node], producers: dict[str, Node], order: dict[str, int]) -> dict[str, int]:
    """Layer of each op: 1 + the deepest layer among its producers in the cone (leaves are layer 0)."""
    names = {n.name for n in cone}
    depth: dict[str, int] = {}
    for node in sorted(cone, key=lambda n: order.get(n.name, len(order))):  # topological order
        below = [depth.get(producers[i].name, 0) for i in node.inputs
                 if i in producers and producers[i].name in names]
        depth[node.name] = 1 + max(below, default=0)
    return depth


def self_interval(report: Report, node: Node) -> str:
    """The interval of a node's first output, as text."""
    return _tensor_interval(report, node.outputs[0]) if node.outputs else ""


def _tensor_interval(report: Report, name: str) -> str:
    iv = report.analysis.run.env.get(name)
    return "" if iv is None else _interval(iv.min(), iv.max())


def _box(box: _Box, x: float, y: float) -> str:
    fill, stroke = {"target": ("#fde8e8", "#d00"), "input": ("#e8f1fd", "#36c"), "weight": ("#eef7e8", "#5a3"),
                    "more": ("#f6f6f6", "#bbb")}.get(box.kind, ("#fff", "#888"))
    width = 3 if box.kind == "target" else 1
    shape = (f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="{_H // 2 if box.kind != "op" else 6}" '
             f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>')
    label = box.label if box.kind in ("input", "weight") else f"{box.label} {_short(box.title, 18)}"
    return (f'<g class="node {box.kind}" data-node="{escape(box.title)}"><title>{escape(box.title)}</title>{shape}'
            f'<text class="op" x="{x + 8}" y="{y + 19}">{escape(_short(label, 28))}</text>'
            f'<text x="{x + 8}" y="{y + 36}">{escape(_short(box.interval, 30))}</text></g>')


def _edge(a: tuple[float, float], b: tuple[float, float], hot: bool) -> str:
    x1, y1 = a[0] + _W, a[1] + _H / 2
    x2, y2 = b[0], b[1] + _H / 2
    colour, width = ("#d00", 2.5) if hot else ("#888", 1.2)
    mid = (x1 + x2) / 2
    return (f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" fill="none" stroke="{colour}" '
            f'stroke-width="{width}" marker-end="url(#arrow)"/>')


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _interval(low: float, high: float) -> str:
    return f"[{_num(low)}, {_num(high)}]"


def _num(value: float) -> str:
    if math.isnan(value):
        return "?"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:.4g}"
