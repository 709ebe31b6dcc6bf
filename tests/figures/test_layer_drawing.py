"""The drawing made from a layer table: which layers get a box, and what each box says."""

import xml.etree.ElementTree as ET

import pytest

from deeparch.figures.layer_drawing import (
    MAX_BOX_WIDTH,
    MAX_LAYERS,
    DrawnLayer,
    drawn_layers,
    layer_stack_drawing,
)
from deeparch.introspection.table import LayerRow, LayerTable, summarize
from deeparch.models import list_archs

SVG = "{http://www.w3.org/2000/svg}"


def _row(name: str, type_: str, shape: tuple[int, ...] | None, params: int = 0) -> LayerRow:
    return LayerRow(name, type_, shape, params, params, 0, "", name.split(".")[0], 1)


def _boxes_and_texts(svg: str) -> tuple[list[ET.Element], list[str]]:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    boxes = [rect for rect in root.iter(f"{SVG}rect") if "rx" in rect.attrib]  # not the backdrop
    return boxes, [text.text or "" for text in root.iter(f"{SVG}text")]


def test_the_mlp_is_drawn_layer_by_layer_with_its_shapes():
    table = summarize("mlp")  # 784-500-200-100-10: flatten, 3x (Linear, ReLU), Linear
    layers = drawn_layers(table.rows)
    # Eight layers ran; more than fit, so only the four with parameters get a box.
    assert [(layer.name, layer.label, layer.output_shape) for layer in layers] == [
        ("layers.fc1", "Linear", (500,)),
        ("layers.fc2", "Linear", (200,)),
        ("layers.fc3", "Linear", (100,)),
        ("output", "Linear", (10,)),
    ]
    assert [layer.params for layer in layers] == [392_500, 100_200, 20_100, 1_010]
    boxes, texts = _boxes_and_texts(layer_stack_drawing(table))
    assert texts[0] == "mlp · input 1×28×28"
    assert len(boxes) == 4 and {"500", "200", "100", "10", "layers.fc1", "output"} <= set(texts)
    widths = [float(box.get("width")) for box in boxes]
    assert widths[0] == MAX_BOX_WIDTH and widths == sorted(widths, reverse=True)  # narrowing


def test_a_deep_stack_is_grouped_by_the_deepest_module_path_that_fits():
    # resnet of 2 blocks a stage at 16 channels: 50 layers; with parameters 36; by stage
    # (stages.stage1, ...) six boxes.
    layers = drawn_layers(summarize("resnet", {"blocks_per_stage": 2, "base_channels": 16}).rows)
    assert [(layer.name, layer.label, layer.output_shape) for layer in layers] == [
        ("stem.conv", "Conv2d", (16, 28, 28)),
        ("stem.bn", "BatchNorm2d", (16, 28, 28)),
        ("stages.stage1", "8 layers", (16, 28, 28)),
        ("stages.stage2", "10 layers", (32, 14, 14)),  # two more: the 1x1 projection shortcut
        ("stages.stage3", "10 layers", (64, 7, 7)),
        ("output", "Linear", (10,)),
    ]
    inception = drawn_layers(summarize("inception").rows)
    assert [layer.label for layer in inception][1:4] == ["6 × Conv2d"] * 3  # a module's branches


def test_too_many_parts_leave_out_the_middle_in_one_box():
    rows = [
        _row(f"block{index}", "Linear", (1, 10 - index), params=index + 1) for index in range(9)
    ]
    layers = drawn_layers(rows)
    assert len(layers) == MAX_LAYERS
    assert [layer.name for layer in layers] == [
        "block0",
        "block1",
        "block2",
        "block3",
        "…",
        "block8",
    ]
    middle = layers[4]
    assert middle == DrawnLayer("…", "Linear", (3,), params=5 + 6 + 7 + 8, layer_count=4)  # block7
    assert middle.label == "4 × Linear"
    assert sum(layer.params for layer in layers) == sum(range(1, 10))


def test_layers_that_never_ran_get_no_box_and_names_are_escaped():
    rows = [_row("a<b>&c", "Linear", (1, 4), 12), _row("unused", "Linear", None, 8)]
    table = LayerTable("odd", rows, input_shapes=[(1, 3)])
    svg = layer_stack_drawing(table)
    assert "a&lt;b&gt;&amp;c" in svg and "unused" not in svg
    boxes, texts = _boxes_and_texts(svg)
    assert len(boxes) == 1 and texts == ["odd · input 3", "Linear", "a<b>&c", "4"]


@pytest.mark.parametrize("arch", list_archs())
def test_every_architecture_can_be_drawn_from_its_layer_table(arch):
    table = summarize(arch)
    layers = drawn_layers(table.rows)
    assert 1 <= len(layers) <= MAX_LAYERS
    # Nothing is lost: the boxes hold every parameter (every layer with parameters ran).
    assert sum(layer.params for layer in layers) == table.total_params
    boxes, texts = _boxes_and_texts(layer_stack_drawing(table))
    assert len(boxes) == len(layers)
    assert texts[0].startswith(arch)
    assert all(layer.label in texts for layer in layers)
