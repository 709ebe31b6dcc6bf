"""A model's graph as data: nodes, the tensors between them, and the blocks that frame them;
blocks collapse into single boxes. deeparch.introspection.graph builds one by tracing,
deeparch.figures.graph draws it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from deeparch.introspection.table import LayerTable

# Node kinds: what a node stands for, and so how it is drawn.
INPUT, OUTPUT, MODULE, FUNCTION, BLOCK = "input", "output", "module", "function", "block"


@dataclass(frozen=True)
class GraphNode:
    """One box of the drawing."""

    id: str  # unique within the graph (fx's node name, or a module path)
    kind: str  # INPUT, OUTPUT, MODULE, FUNCTION or BLOCK (a module drawn as one box)
    label: str  # the module path as in the parameter table ("stem.conv"), or the function ("add")
    type: str  # class name for modules and blocks ("Conv2d"); "" otherwise
    params: int = 0  # parameters of the module, its submodules included
    scope: tuple[str, ...] = ()  # paths of the modules it runs inside, outermost first


@dataclass(frozen=True)
class GraphEdge:
    """A tensor flowing from one node into another; `shape` includes the batch dimension (1)."""

    source: str
    target: str
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class Block:
    """A module whose nodes are drawn inside one frame, and may be collapsed into one box."""

    path: str  # "stages.stage1.block1"
    type: str  # "ConvBlock"
    params: int
    repeated: bool  # a class of our own that the model holds more than once (ResNet's blocks)


@dataclass
class ModelGraph:
    """Nodes in the order they run, edges between them, and the blocks that frame them.

    `traced` is False when the drawing only follows module order; `reason` then says why.
    `notes` names modules drawn as one box because fx cannot trace inside them.
    """

    title: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    blocks: list[Block] = field(default_factory=list)  # outer blocks before the ones inside them
    traced: bool = True
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    def node(self, node_id: str) -> GraphNode:
        return next(node for node in self.nodes if node.id == node_id)

    def inputs_of(self, node_id: str) -> list[GraphEdge]:
        return [edge for edge in self.edges if edge.target == node_id]

    def outputs_of(self, node_id: str) -> list[GraphEdge]:
        return [edge for edge in self.edges if edge.source == node_id]

    @property
    def repeated_blocks(self) -> list[str]:
        """Paths of the repeated blocks that no other repeated block contains."""
        repeated = [block.path for block in self.blocks if block.repeated]
        return [path for path in repeated if not any(_inside(path, other) for other in repeated)]


def _inside(path: str, block: str) -> bool:
    """Whether module `path` lies strictly inside module `block`."""
    return path.startswith(block + ".")


# ---------------------------------------------------------------------------------------------
# Module order, where tracing fails


def module_order_graph(table: LayerTable, reason: str) -> ModelGraph:
    """The layers that ran, one after another in the order they ran: the drawing of last resort."""
    rows = [row for row in table.rows if row.output_shape is not None]
    input_shape = table.input_shapes[0] if table.input_shapes else None
    nodes = [GraphNode("(input)", INPUT, "input", "")]
    edges = []
    shape_above = input_shape
    for row in rows:
        parents = row.name.split(".")[:-1]
        scope = tuple(".".join(parents[: depth + 1]) for depth in range(len(parents)))
        nodes.append(GraphNode(row.name, MODULE, row.name, row.type, row.params, scope))
        edges.append(GraphEdge(nodes[-2].id, row.name, shape_above))
        shape_above = row.output_shape
    nodes.append(GraphNode("(output)", OUTPUT, "output", ""))
    edges.append(GraphEdge(nodes[-2].id, "(output)", shape_above))
    return ModelGraph(table.title, nodes, edges, traced=False, reason=reason)


# ---------------------------------------------------------------------------------------------
# Collapsing blocks


def collapse(graph: ModelGraph, paths: Iterable[str]) -> ModelGraph:
    """The graph with each named block drawn as one box (its path and parameter count): the
    nodes inside go, the edges into and out of it stay. Inputs and outputs never collapse."""
    by_path = {block.path: block for block in graph.blocks}
    chosen = [path for path in dict.fromkeys(paths) if path in by_path]
    chosen = [path for path in chosen if not any(_inside(path, other) for other in chosen)]
    replaced: dict[str, str] = {}  # inner node id -> block node id
    nodes: list[GraphNode] = []
    for node in graph.nodes:
        path = next(
            (p for p in chosen if p in node.scope and node.kind not in (INPUT, OUTPUT)), None
        )
        if path is None:
            nodes.append(node)
            continue
        replaced[node.id] = path
        if path not in {n.id for n in nodes}:
            block = by_path[path]
            outer = node.scope[: node.scope.index(path)]
            nodes.append(GraphNode(path, BLOCK, path, block.type, block.params, outer))
    edges = []
    for edge in graph.edges:
        source = replaced.get(edge.source, edge.source)
        target = replaced.get(edge.target, edge.target)
        if source != target:  # an edge between two nodes of one collapsed block goes
            edges.append(GraphEdge(source, target, edge.shape))
    blocks = [
        block
        for block in graph.blocks
        if not any(block.path == p or _inside(block.path, p) for p in chosen)
    ]
    return dataclasses.replace(graph, nodes=nodes, edges=list(dict.fromkeys(edges)), blocks=blocks)
