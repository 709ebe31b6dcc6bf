"""DOT source of model graphs, read back by a small tokenizer of our own (no graphviz here)."""

import re
from collections import OrderedDict

import pytest
from torch import nn

from deeparch.figures.graph import graph_dot, quote
from deeparch.introspection.graph import summarize_graph
from deeparch.introspection.model_graph import (
    BLOCK,
    MODULE,
    Block,
    GraphEdge,
    GraphNode,
    ModelGraph,
    collapse,
    module_order_graph,
)
from deeparch.introspection.table import layer_table
from deeparch.models.registry import list_archs

TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|->|[{}\[\];=,]|[^\s{}\[\];=,"]+')


def tokens(dot: str) -> list[str]:
    # Every character belongs to a token or is blank: no quote left open, nothing unreadable.
    assert TOKEN.sub("", dot).strip() == ""
    return TOKEN.findall(dot)


def unquote(token: str) -> str:
    assert token.startswith('"') and token.endswith('"'), token
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), token[1:-1])


def statements(dot: str) -> dict:
    """Nodes declared ({id: attributes}), edges ([(source, target, attributes)]), clusters."""
    found = tokens(dot)
    depth, nodes, edges, clusters = 0, {}, [], []
    i = 0
    while i < len(found):
        token = found[i]
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            assert depth >= 0, "a closing brace without its opening one"
        elif token == "subgraph":
            clusters.append(unquote(found[i + 1]))
        elif token.startswith('"') and found[i - 1] not in ("digraph", "subgraph", "=", "->"):
            attributes, end = read_attributes(found, i + 1)
            if found[i + 1] == "->":
                target = unquote(found[i + 2])
                attributes, end = read_attributes(found, i + 3)
                edges.append((unquote(token), target, attributes))
            else:
                nodes[unquote(token)] = attributes
            i = end
            continue
        i += 1
    assert depth == 0, "unbalanced braces"
    return {"nodes": nodes, "edges": edges, "clusters": clusters}


def read_attributes(found: list[str], i: int) -> tuple[dict, int]:
    if i >= len(found) or found[i] != "[":
        return {}, i
    attributes = {}
    i += 1
    while found[i] != "]":
        key, equals, value = found[i], found[i + 1], found[i + 2]
        assert equals == "=", found[i : i + 3]
        attributes[key] = unquote(value)
        i += 3
        if found[i] == ",":
            i += 1
    return attributes, i + 1


@pytest.mark.parametrize("arch", list_archs())
@pytest.mark.parametrize("collapsed", [False, True])
def test_dot_of_every_architecture_declares_every_endpoint_and_every_shape(arch, collapsed):
    graph = summarize_graph(arch)
    if collapsed:
        graph = collapse(graph, graph.repeated_blocks)
    read = statements(graph_dot(graph))
    assert set(read["nodes"]) == {node.id for node in graph.nodes}
    assert len(read["edges"]) == len(graph.edges)
    for (source, target, attributes), edge in zip(read["edges"], graph.edges):
        assert source in read["nodes"] and target in read["nodes"]
        assert (source, target) == (edge.source, edge.target)
        assert attributes.get("label", "").strip() == "×".join(map(str, edge.shape or ()))
    assert sorted(read["clusters"]) == sorted("cluster_" + block.path for block in graph.blocks)
    for node in graph.nodes:
        if node.kind in (MODULE, BLOCK) and node.params:
            assert f"{node.params:,} params" in read["nodes"][node.id]["label"]


def test_labels_with_quotes_backslashes_and_newlines_survive_escaping():
    tricky = 'say "hi"\\n\nnext'
    graph = ModelGraph(
        title='a "model"',
        nodes=[
            GraphNode('in"put', "input", tricky, ""),
            GraphNode("m", MODULE, "block.fc", 'Li"near', 12, scope=('bl"ock',)),
        ],
        edges=[GraphEdge('in"put', "m", (1, 4))],
        blocks=[Block('bl"ock', "Seq}uential{", 12, repeated=False)],
    )
    dot = graph_dot(graph)
    read = statements(dot)
    assert read["nodes"]['in"put']["label"] == tricky
    assert read["nodes"]["m"]["label"] == 'block.fc\nLi"near · 12 params'
    assert read["edges"] == [('in"put', "m", {"label": " 1×4"})]
    assert read["clusters"] == ['cluster_bl"ock']
    assert '\\"hi\\"' in dot and "\n" not in quote(tricky)


def test_a_module_order_chain_writes_every_layer_and_every_shape():
    """What the old straight layer stack showed: a box per layer, its count, shapes on arrows."""
    model = nn.Sequential(
        OrderedDict(fc1=nn.Linear(784, 500), act1=nn.ReLU(), fc2=nn.Linear(500, 10))
    )
    graph = module_order_graph(layer_table(model, (784,)), "shown in module order")
    read = statements(graph_dot(graph))
    labels = [attributes["label"] for attributes in read["nodes"].values()]
    boxes = [a for a in read["nodes"].values() if a["shape"] == "box"]
    assert len(boxes) == 3 and len(read["nodes"]) == 5  # one box per layer, input, output
    assert sum("392,500 params" in label for label in labels) == 1
    shapes = [attributes["label"].strip() for _, _, attributes in read["edges"]]
    assert shapes[0] == "1×784"  # the shape on the first arrow
    assert shapes.count("1×500") == 2  # on the arrows after fc1 and act1
    assert read["edges"][-1][1] == "(output)" and shapes[-1] == "1×10"
    assert len(read["edges"]) == 4  # input -> fc1 -> act1 -> fc2 -> output


def test_a_collapsed_block_is_one_labelled_box():
    graph = summarize_graph("inception")
    read = statements(graph_dot(collapse(graph, ["inc2"])))
    label = read["nodes"]["inc2"]["label"]
    block = next(b for b in graph.blocks if b.path == "inc2")
    assert label == f"inc2\nInceptionModule · {block.params:,} params"
    assert read["nodes"]["inc2"]["shape"] == "box3d"
    assert not any(cluster.startswith("cluster_inc2") for cluster in read["clusters"])
