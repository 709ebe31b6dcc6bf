"""Any architecture drawn from its layer table: the layer stack as boxes with output shapes.

Home shows this drawing for a family that has no drawing of its own in assets/, so a new family
needs none. A pure function of the table: no model is built here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deeparch.figures.svg import GREEN, GREY, HEIGHT, ORANGE, Drawing

if TYPE_CHECKING:
    from deeparch.introspection.table import LayerRow, LayerTable

MAX_LAYERS = 6  # rows that fit under the title on the 360x200 canvas
TOP, BOX_HEIGHT, BOTTOM_MARGIN = 30, 18, 12  # px; the first box's top is under the title
MAX_PITCH = 36  # px from one box's top to the next's: a short stack spreads out, up to this
NAME_RIGHT, BOX_LEFT, SHAPE_RIGHT = 116, 122, 352  # column edges (px)
# Box width grows with the log of the output's size, so a bottleneck or a flatten shows.
MIN_BOX_WIDTH, MAX_BOX_WIDTH = 80, 150  # 80: "ConvTranspose2d" at 9 px still fits
NAME_CHARS = 22  # about what fits left of the boxes at 9 px
ELIDED = "…"  # the name of the box that stands for the layers left out


@dataclass(frozen=True)
class DrawnLayer:
    """One box: a layer, or consecutive layers under one module path, or the elided middle."""

    name: str  # module path ("layers.fc1", "stages.stage1"), or "…" for the layers left out
    type: str  # class name of its layers ("Conv2d"); "" when they differ
    output_shape: tuple[int, ...]  # of its last layer, without the batch dimension
    params: int
    layer_count: int = 1

    @property
    def label(self) -> str:
        if self.layer_count == 1:
            return self.type
        return f"{self.layer_count} × {self.type}" if self.type else f"{self.layer_count} layers"


def drawn_layers(rows: Sequence[LayerRow], max_layers: int = MAX_LAYERS) -> list[DrawnLayer]:
    """At most `max_layers` boxes for the layers that ran, in order.

    Every layer if they fit; else only those with parameters (activations and reshapes go); if
    still too many, layers grouped by the deepest module path that fits ("stages.stage1", then
    "stages"); if even the top-level parts are too many, the middle ones become one box.
    """
    ran = [row for row in rows if row.output_shape is not None]
    if len(ran) > max_layers:
        ran = [row for row in ran if row.params > 0] or ran
    depth = max((row.name.count(".") + 1 for row in ran), default=1)
    groups = _groups(ran, depth)
    while depth > 1 and len(groups) > max_layers:
        depth -= 1
        groups = _groups(ran, depth)
    boxes = [_box(prefix, group) for prefix, group in groups]
    if len(boxes) <= max_layers:
        return boxes
    kept_front = max_layers - 2
    left_out = boxes[kept_front:-1]
    middle = DrawnLayer(
        name=ELIDED,
        type=_common_type(left_out),
        output_shape=left_out[-1].output_shape,
        params=sum(box.params for box in left_out),
        layer_count=sum(box.layer_count for box in left_out),
    )
    return [*boxes[:kept_front], middle, boxes[-1]]


def layer_stack_drawing(table: LayerTable) -> str:
    """An SVG of a layer table, top to bottom: module path, a box with the type, output shape."""
    layers = drawn_layers(table.rows)
    title = table.title
    if len(table.input_shapes) == 1:  # a GAN's two passes (noise, image) have no one input
        title += f" · input {shape_text(table.input_shapes[0][1:])}"
    drawing = Drawing(title)
    largest = max((math.prod(layer.output_shape) for layer in layers), default=1)
    room = HEIGHT - BOTTOM_MARGIN - BOX_HEIGHT - TOP
    pitch = min(MAX_PITCH, room / max(len(layers) - 1, 1))
    for index, layer in enumerate(layers):
        top = TOP + index * pitch
        middle = top + BOX_HEIGHT / 2 + 3
        if index > 0:
            drawing.line(BOX_LEFT + 12, top - pitch + BOX_HEIGHT, BOX_LEFT + 12, top, arrow=True)
        colour = GREY if layer.name == ELIDED else GREEN if index == len(layers) - 1 else ORANGE
        width = _box_width(math.prod(layer.output_shape), largest)
        drawing.box(BOX_LEFT, top, width, BOX_HEIGHT, colour, layer.label)
        drawing.text(NAME_RIGHT, middle, _shortened(layer.name), size=9, anchor="end")
        drawing.text(SHAPE_RIGHT, middle, shape_text(layer.output_shape), size=9, anchor="end")
    return drawing.svg()


def shape_text(shape: Sequence[int]) -> str:
    """16×28×28, as the hand-made drawings write shapes; a single number for a vector."""
    return "×".join(str(size) for size in shape) or "1"


def _groups(rows: Sequence[LayerRow], depth: int) -> list[tuple[str, list[LayerRow]]]:
    """Consecutive rows sharing the first `depth` parts of their module path."""

    def path_prefix(row: LayerRow) -> str:
        return ".".join(row.name.split(".")[:depth])

    return [(prefix, list(group)) for prefix, group in itertools.groupby(rows, key=path_prefix)]


def _box(prefix: str, group: list[LayerRow]) -> DrawnLayer:
    last = group[-1]
    return DrawnLayer(
        name=last.name if len(group) == 1 else prefix,
        type=_common_type(group),
        output_shape=last.output_shape[1:],
        params=sum(row.params for row in group),
        layer_count=len(group),
    )


def _common_type(layers: Sequence[LayerRow | DrawnLayer]) -> str:
    types = {layer.type for layer in layers}
    return types.pop() if len(types) == 1 else ""


def _box_width(size: int, largest: int) -> float:
    if largest <= 1:
        return MAX_BOX_WIDTH
    scale = math.log(max(size, 1)) / math.log(largest)
    return round(MIN_BOX_WIDTH + (MAX_BOX_WIDTH - MIN_BOX_WIDTH) * scale, 1)


def _shortened(name: str) -> str:
    return name if len(name) <= NAME_CHARS else "…" + name[-(NAME_CHARS - 1) :]
