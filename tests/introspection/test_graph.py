"""Traced graphs: every registered architecture, checked against the hook-based layer table,
against the configs that built it, and on toy models whose graph is known by hand."""

from collections import Counter, OrderedDict
from functools import cache

import pytest
import torch
from torch import nn

from deeparch.introspection import graph as graph_module
from deeparch.introspection.graph import (
    TracedPart,
    TracingFailed,
    summarize_graph,
    trace_graph,
)
from deeparch.introspection.model_graph import (
    BLOCK,
    FUNCTION,
    INPUT,
    MODULE,
    OUTPUT,
    ModelGraph,
    collapse,
    module_order_graph,
)
from deeparch.introspection.table import layer_table, summarize
from deeparch.models.inception import InceptionConfig, module_widths
from deeparch.models.registry import create_model, list_archs
from deeparch.models.resnet import ResNetConfig
from tests.introspection.test_table import chollet_convnet  # counted by hand there


@cache
def traced(arch: str) -> ModelGraph:
    return summarize_graph(arch)


@cache
def table(arch: str):
    return summarize(arch)


def functions(graph: ModelGraph, name: str) -> list:
    return [node for node in graph.nodes if node.kind == FUNCTION and node.label.split()[0] == name]


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- every architecture -----------------------------------------------------------------------


@pytest.mark.parametrize("arch", list_archs())
def test_every_architecture_gives_a_graph_or_says_why_not(arch):
    graph = traced(arch)
    assert graph.nodes and graph.edges
    if not graph.traced:
        assert graph.reason
        return
    ids = [node.id for node in graph.nodes]
    assert len(ids) == len(set(ids))
    for edge in graph.edges:
        assert edge.source in ids and edge.target in ids
    assert any(node.kind == INPUT for node in graph.nodes)
    assert any(node.kind == OUTPUT for node in graph.nodes)


@pytest.mark.parametrize("arch", list_archs())
def test_every_parameterised_module_that_runs_is_one_node_per_call(arch):
    """The hooks of the layer table are the oracle: which modules ran, and how often."""
    graph = traced(arch)
    if not graph.traced:
        pytest.skip(graph.reason)
    model, _ = create_model(arch)
    modules = dict(model.named_modules())
    boxes = [node.label for node in graph.nodes if node.kind == BLOCK]  # drawn whole
    calls = {
        row.name: row.detail["calls"]
        for row in table(arch).rows
        if row.output_shape is not None
        and next(modules[row.name].parameters(recurse=False), None) is not None
        and not any(row.name.startswith(box + ".") for box in boxes)
    }
    nodes = Counter(node.label for node in graph.nodes if node.kind == MODULE and node.params)
    assert nodes == Counter(calls)
    assert sum(nodes.values()) == sum(calls.values())
    for box in boxes:  # a box counts every parameter of the module it stands for
        assert graph.node(next(n.id for n in graph.nodes if n.label == box)).params == numel(
            modules[box]
        )


@pytest.mark.parametrize("arch", list_archs())
def test_edge_shapes_are_the_layer_tables_output_shapes(arch):
    graph = traced(arch)
    if not graph.traced:
        pytest.skip(graph.reason)
    shapes = {row.name: row.output_shape for row in table(arch).rows}
    checked = 0
    for node in graph.nodes:
        if node.kind != MODULE:
            continue
        for edge in graph.outputs_of(node.id):
            assert edge.shape == shapes[node.label], (node.label, edge)
            checked += 1
    assert checked > 0
    inputs = {edge.shape for n in graph.nodes if n.kind == INPUT for edge in graph.outputs_of(n.id)}
    assert set(table(arch).input_shapes) <= inputs


# --- the graphs that a straight line drew wrong ------------------------------------------------


def branch_input(graph: ModelGraph, node_id: str) -> str:
    """The node outside an Inception branch whose output the branch (ending at node_id) reads."""
    while ".branch" in graph.node(node_id).label:
        (edge,) = graph.inputs_of(node_id)
        node_id = edge.source
    return node_id


def test_inception_splits_into_four_branches_that_one_cat_joins():
    graph = traced("inception")
    widths = module_widths(InceptionConfig())
    cats = functions(graph, "cat")
    assert len(cats) == len(widths) == InceptionConfig().modules
    for cat, width in zip(cats, widths):
        incoming = graph.inputs_of(cat.id)
        assert len(incoming) == 4
        # The four branch outputs side by side: 1x1 + 3x3 + 5x5 + pool projection channels.
        assert sorted(edge.shape[1] for edge in incoming) == sorted(
            [width.conv1x1, width.conv3x3, width.conv5x5, width.pool_proj]
        )
        (out,) = graph.outputs_of(cat.id)
        assert out.shape[1] == width.out_channels
        # Walk back up each branch to the node that feeds it: one node feeds all four.
        starts = {branch_input(graph, edge.source) for edge in incoming}
        (split,) = starts
        assert len(graph.outputs_of(split)) == 4
        assert len({edge.shape for edge in graph.outputs_of(split)}) == 1  # the same input


def test_resnet_adds_a_skip_to_every_block_and_plainnet_adds_none():
    graph = traced("resnet")
    config = ResNetConfig()
    adds = functions(graph, "add")
    assert len(adds) == config.stages * config.blocks_per_stage
    for add in adds:
        block = add.scope[-1]  # stages.stage1.block1
        main, skip = graph.inputs_of(add.id)
        assert graph.node(main.source).label == f"{block}.bn2"
        skipped = graph.node(skip.source)
        # The skip carries the block's input: from outside the block, or its 1x1 projection.
        assert block not in skipped.scope or skipped.label == f"{block}.shortcut.bn"
        assert main.shape == skip.shape
    assert functions(traced("plainnet"), "add") == []


def test_unet2d_cats_join_each_encoder_level_to_the_decoder_level_of_its_size():
    graph = traced("unet2d")
    cats = functions(graph, "cat")
    assert len(cats) == 2  # depth 2
    for level, cat in zip((1, 0), cats):  # the deepest level is joined first
        sources = [graph.node(edge.source) for edge in graph.inputs_of(cat.id)]
        encoder = [n for n in sources if f"encoder.{level}" in n.scope]
        decoder = [n for n in sources if f"encoder.{level}" not in n.scope]
        assert len(encoder) == len(decoder) == 1
        assert any(path.startswith(("decoder", "bottleneck")) for path in decoder[0].scope)
        shapes = [edge.shape for edge in graph.inputs_of(cat.id)]
        assert shapes[0][2:] == shapes[1][2:]  # same height and width
        (out,) = graph.outputs_of(cat.id)
        assert out.shape[1] == shapes[0][1] + shapes[1][1]
    no_skips = summarize_graph("unet2d", {"skip_connections": False})
    assert functions(no_skips, "cat") == []


def test_mlp_is_a_straight_chain():
    graph = traced("mlp")
    assert len(graph.edges) == len(graph.nodes) - 1
    for node in graph.nodes:
        assert len(graph.inputs_of(node.id)) == (0 if node.kind == INPUT else 1)
        assert len(graph.outputs_of(node.id)) == (0 if node.kind == OUTPUT else 1)
    assert [n.kind for n in graph.nodes].count(INPUT) == 1


def test_vae_draws_the_reparameterisation_and_returns_three_tensors():
    graph = traced("vae")
    (output,) = [node for node in graph.nodes if node.kind == OUTPUT]
    assert len(graph.inputs_of(output.id)) == 3  # reconstruction, mu, logvar
    labels = {node.label for node in graph.nodes}
    assert {"mu", "logvar", "exp", "randn", "mul", "add"} <= labels  # z = mu + eps * sigma


def test_a_gan_is_traced_as_its_two_players():
    graph = traced("cgan")
    inputs = [node.label for node in graph.nodes if node.kind == INPUT]
    assert inputs == [
        "generator input z",
        "generator input labels",
        "discriminator input x",
        "discriminator input labels",
    ]
    for node in graph.nodes:
        assert node.scope[0] in ("generator", "discriminator")
    assert [b.path for b in graph.blocks[:2]] == ["generator", "discriminator"]


def test_sequence_models_read_out_the_last_step():
    graph = traced("lstm")
    assert [node.label for node in graph.nodes] == [
        "input e", "rnn", "index [:, -1]", "head", "output"
    ]  # fmt: skip
    assert graph.edges[1].shape == (1, 40, 64) and graph.edges[2].shape == (1, 64)


def test_qrnn_layers_are_boxes_because_their_time_loop_cannot_be_traced():
    graph = traced("qrnn")
    model, _ = create_model("qrnn")
    boxes = [node for node in graph.nodes if node.kind == BLOCK]
    assert [box.label for box in boxes] == ["qrnn.0", "qrnn.1"]
    assert [box.params for box in boxes] == [numel(model.qrnn[0]), numel(model.qrnn[1])]
    assert len(graph.notes) == 2 and "for t in range(steps)" in graph.notes[0]


# --- where fx cannot trace --------------------------------------------------------------------


class BranchesOnData(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent Python control flow
            return self.fc(x)
        return x


class HoldsABranchingPart(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = BranchesOnData()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.inner(x) + x)


def part(module: nn.Module) -> list:
    return [TracedPart("", module, "forward", (torch.rand(1, 4),))]


def test_data_dependent_control_flow_at_the_top_cannot_be_traced():
    with pytest.raises(TracingFailed, match="control flow.*test_graph.py"):
        trace_graph(BranchesOnData(), part(BranchesOnData()))


def test_a_traced_graph_that_cannot_run_is_not_drawn():
    model = nn.Linear(3, 2)  # fx traces it whole; only running it meets the 1x4 input
    with pytest.raises(TracingFailed, match="does not run.*mat1 and mat2"):
        trace_graph(model, part(model))


def test_a_part_that_cannot_be_traced_is_drawn_whole():
    model = HoldsABranchingPart()
    graph = trace_graph(model, part(model))
    assert [(n.kind, n.label) for n in graph.nodes] == [
        (INPUT, "input x"), (BLOCK, "inner"), (FUNCTION, "add"), (MODULE, "fc"), (OUTPUT, "output")
    ]  # fmt: skip
    assert graph.node("inner").params == 20
    (note,) = graph.notes
    assert note.startswith("inner is drawn as one box") and "test_graph.py" in note


def test_the_registry_falls_back_to_module_order_with_the_reason(monkeypatch):
    monkeypatch.setattr(graph_module, "module_parts", lambda *_: part(BranchesOnData()))
    graph = summarize_graph("mlp")
    assert not graph.traced and "control flow" in graph.reason
    rows = [row for row in table("mlp").rows if row.output_shape is not None]
    assert [node.label for node in graph.nodes[1:-1]] == [row.name for row in rows]


def test_module_order_chains_the_layers_that_ran_with_their_shapes():
    layers = layer_table(chollet_convnet(), (1, 28, 28))
    graph = module_order_graph(layers, "a reason")
    assert not graph.traced and graph.reason == "a reason"
    last = graph.nodes[-2]
    assert (last.label, last.type, graph.edges[-1].shape) == ("11", "Linear", (1, 10))
    assert graph.edges[0].shape == (1, 1, 28, 28)
    assert [edge.shape for edge in graph.edges[1:]] == [row.output_shape for row in layers.rows]
    assert [node.params for node in graph.nodes[1:-1]] == [row.params for row in layers.rows]


# --- collapsing ----------------------------------------------------------------------------------


def test_collapsing_a_block_keeps_the_edges_into_and_out_of_it():
    graph = traced("resnet")
    model, _ = create_model("resnet")
    block = "stages.stage2.block1"  # stride 2: a projection shortcut inside
    inner = {node.id for node in graph.nodes if block in node.scope}
    crossing_in = {(e.source, e.shape) for e in graph.edges if e.target in inner - {e.source}}
    crossing_in = {(s, shape) for s, shape in crossing_in if s not in inner}
    crossing_out = {(e.target, e.shape) for e in graph.edges if e.source in inner}
    crossing_out = {(t, shape) for t, shape in crossing_out if t not in inner}

    small = collapse(graph, [block])
    assert len(small.nodes) == len(graph.nodes) - len(inner) + 1
    assert not any(block in node.scope for node in small.nodes)
    box = small.node(block)
    assert (box.kind, box.label, box.type) == (BLOCK, block, "ConvBlock")
    # 8 -> 16 channels at the defaults: two 3x3 convs (8*16*9 + 16*16*9), a 1x1 projection
    # (8*16), three BatchNorms of 16 (2*16 each)
    assert box.params == numel(model.stages.stage2.block1) == 8 * 16 * 9 + 16 * 16 * 9 + 8 * 16 + 96
    assert {(e.source, e.shape) for e in small.inputs_of(block)} == crossing_in
    assert {(e.target, e.shape) for e in small.outputs_of(block)} == crossing_out
    assert len(small.inputs_of(block)) == 1  # conv1 and the shortcut read the same tensor
    assert block not in {b.path for b in small.blocks}
    assert f"{block}.shortcut" not in {b.path for b in small.blocks}


def test_collapsing_every_repeated_block_of_resnet_leaves_one_box_per_block():
    graph = traced("resnet")
    graph = collapse(graph, graph.repeated_blocks)
    config = ResNetConfig()
    boxes = [node for node in graph.nodes if node.kind == BLOCK]
    assert len(boxes) == config.stages * config.blocks_per_stage
    assert functions(graph, "add") == []
    assert sum(node.params for node in graph.nodes) == table("resnet").total_params
    labels = [node.label for node in graph.nodes if node.kind not in (INPUT, OUTPUT)]
    assert labels[:3] == ["stem.conv", "stem.bn", "stem.act"]
    assert labels[3] == "stages.stage1.block1" and labels[-1] == "output"


def test_repeated_blocks_are_the_outermost_classes_of_our_own_held_twice():
    assert traced("inception").repeated_blocks == ["inc1", "inc2", "inc3"]
    assert traced("unet2d").repeated_blocks == ["encoder.0", "encoder.1", "decoder.0", "decoder.1"]
    assert traced("mlp").repeated_blocks == []
    nested = nn.Sequential(OrderedDict(a=HoldsABranchingPart(), b=HoldsABranchingPart()))
    graph = trace_graph(nested, part(nested))
    assert graph.repeated_blocks == ["a", "b"]  # not a.inner, b.inner inside them
