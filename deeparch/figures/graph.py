"""A model's graph as Graphviz DOT source: boxes for modules, ovals for functions, frames for
blocks, and the tensor shape written on every edge. Pure: a ModelGraph in, a string out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from deeparch.figures.svg import BLUE, GREEN, GREY, ORANGE, PURPLE

if TYPE_CHECKING:  # only for the annotations: the figure reads the graph, it builds nothing
    from deeparch.introspection.model_graph import Block, GraphNode, ModelGraph

FONT = "Helvetica"
# (shape, fill, border) per node kind; a module without parameters (ReLU, pooling) is grey.
NODE_STYLES = {
    "input": ("oval", "#E2F0D9", GREEN),
    "output": ("oval", "#E2F0D9", GREEN),
    "module": ("box", "#DCE6F2", BLUE),
    "function": ("ellipse", "#FDE9D9", ORANGE),
    "block": ("box3d", "#EADCF0", PURPLE),
}
PARAMETERLESS_STYLE = ("box", "#F2F2F2", GREY)
GRAPH_DEFAULTS = {
    "rankdir": "TB", "fontname": FONT, "fontsize": "10", "nodesep": "0.25", "ranksep": "0.3",
    "labeljust": "l",  # block labels at the frame's top left, clear of the edges
}  # fmt: skip
NODE_DEFAULTS = {
    "style": "rounded,filled", "fontname": FONT, "fontsize": "10", "height": "0.3",
    "margin": "0.08,0.04",
}  # fmt: skip
EDGE_DEFAULTS = {"color": GREY, "fontname": FONT, "fontsize": "8", "arrowsize": "0.6"}
BLOCK_STYLE = {"style": "rounded,dashed", "color": GREY, "fontcolor": GREY}


def quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as DOT's \\n."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "")
    return '"' + escaped.replace("\n", "\\n") + '"'


def shape_text(shape: Sequence[int] | None) -> str:
    return "" if shape is None else "×".join(str(size) for size in shape)


def node_label(node: GraphNode) -> str:
    if node.kind in ("input", "output", "function"):
        return node.label
    count = f" · {node.params:,} params" if node.params or node.kind == "block" else ""
    return f"{node.label}\n{node.type}{count}"


def block_label(block: Block) -> str:
    return f"{block.path} · {block.type} · {block.params:,} params"


def _attributes(**values: str) -> str:
    return "[" + ", ".join(f"{key}={quote(value)}" for key, value in values.items()) + "]"


def _node_line(node: GraphNode) -> str:
    shape, fill, border = NODE_STYLES[node.kind]
    if node.kind == "module" and not node.params:
        shape, fill, border = PARAMETERLESS_STYLE
    return f"{quote(node.id)} " + _attributes(
        label=node_label(node), shape=shape, fillcolor=fill, color=border
    )


def _innermost(scope: Sequence[str], blocks: set[str]) -> str | None:
    return next((path for path in reversed(scope) if path in blocks), None)


def _parent_block(path: str, blocks: set[str]) -> str | None:
    """The innermost other block that contains block `path` (paths nest as prefixes)."""
    outer = [other for other in blocks if path.startswith(other + ".")]
    return max(outer, key=len) if outer else None


def graph_dot(graph: ModelGraph) -> str:
    """DOT source of the graph, top to bottom; each block a frame, its parameter count on it."""
    block_paths = {block.path for block in graph.blocks}
    members: dict[str | None, list[str]] = {}  # block path (None: top level) -> its node lines
    for node in graph.nodes:
        members.setdefault(_innermost(node.scope, block_paths), []).append(_node_line(node))
    children: dict[str | None, list[Block]] = {}
    for block in graph.blocks:
        children.setdefault(_parent_block(block.path, block_paths), []).append(block)

    lines = [
        f"digraph {quote(graph.title or 'model')} {{",
        f"  graph {_attributes(**GRAPH_DEFAULTS)}",
        f"  node {_attributes(**NODE_DEFAULTS)}",
        f"  edge {_attributes(**EDGE_DEFAULTS)}",
    ]

    def add_block(path: str | None, indent: str) -> None:
        lines.extend(indent + line for line in members.get(path, []))
        for block in children.get(path, []):
            lines.append(f"{indent}subgraph {quote('cluster_' + block.path)} {{")
            inner = indent + "  "
            lines.append(f"{inner}graph {_attributes(label=block_label(block), **BLOCK_STYLE)}")
            add_block(block.path, inner)
            lines.append(f"{indent}}}")

    add_block(None, "  ")
    for edge in graph.edges:
        label = f" {_attributes(label=' ' + shape_text(edge.shape))}" if edge.shape else ""
        lines.append(f"  {quote(edge.source)} -> {quote(edge.target)}{label}")
    lines.append("}")
    return "\n".join(lines) + "\n"
