"""Convolution and pooling arithmetic: output sizes and receptive fields, without any layers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from deeparch.errors import ConfigError


def conv_output_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    transposed: bool = False,
    output_padding: int = 0,
) -> int:
    """Length of one spatial axis after a Conv (or ConvTranspose) layer, PyTorch's formulas.

    Conv:          floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1
    ConvTranspose: (size-1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1

    The result may be zero or negative: callers turn that into an error that names their field.
    """
    effective_kernel = dilation * (kernel - 1) + 1
    if transposed:
        return (size - 1) * stride - 2 * padding + effective_kernel + output_padding
    # Floor division also floors negative numerators, so a too-large kernel gives a result <= 0.
    return (size + 2 * padding - effective_kernel) // stride + 1


def pool_output_size(
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Length of one spatial axis after MaxPool/AvgPool; stride defaults to the kernel (PyTorch).

    With ceil_mode the last window may start in the padding on the right only if it starts inside
    the input or the left padding (PyTorch drops a window that would start past them).
    """
    stride = kernel if stride is None else stride
    effective_kernel = dilation * (kernel - 1) + 1
    span = size + 2 * padding - effective_kernel
    if not ceil_mode:
        return span // stride + 1
    out = math.ceil(span / stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def receptive_field(layers: Sequence[Sequence[int]]) -> tuple[int, int]:
    """Receptive field and jump of a stack of layers, each given as (kernel, stride[, dilation]).

    The receptive field is how many input positions one output position sees; the jump is how far
    apart (in input positions) two neighbouring outputs are. Each layer widens the field by
    (effective kernel - 1) times the jump so far (Araujo et al., "Computing receptive fields of
    convolutional neural networks", Distill 2019).
    """
    field, jump = 1, 1
    for layer in layers:
        kernel, stride = int(layer[0]), int(layer[1])
        dilation = int(layer[2]) if len(layer) > 2 else 1
        effective_kernel = dilation * (kernel - 1) + 1
        field += (effective_kernel - 1) * jump
        jump *= stride
    return field, jump


# ---------------------------------------------------------------- the Inspect page's helper

LAYER_MODES = ("convolution", "transposed convolution", "pooling")
# What the helper accepts, per field: (lowest, highest). Wide enough for the layers of the
# zoo (AlexNet's 11x11 stride-4 stem) and for a transposed convolution that upsamples 2 -> 12 with
# kernel 8 and stride 4; small enough to draw every cell.
LAYER_BOUNDS = {
    "size": (1, 32),
    "kernel": (1, 11),
    "stride": (1, 6),
    "padding": (0, 8),
    "dilation": (1, 4),
    "output_padding": (0, 5),
}
MAX_DRAWN = 80  # cells per axis the helper draws: input with its padding, output with its crop


@dataclass(frozen=True)
class LayerAxis:
    """One spatial axis of a convolution, transposed convolution or pooling layer, cell by cell.

    `links` holds (input position, output position, kernel tap) for every product the layer adds
    up. Input positions count from the first real input cell: -1 is the nearest left padding cell
    and `size` the first right one. For a transposed convolution output positions count the same
    way from the first kept output cell: its `padding` crops cells off each end of the full output,
    and those cropped positions are negative or `out` and above. A 2-D layer with the same numbers
    on both axes links (row, column) cells by the product of the two axes' links.
    """

    mode: str
    size: int
    kernel: int
    stride: int
    padding_left: int
    padding_right: int
    dilation: int
    output_padding: int
    ceil_mode: bool
    out: int
    links: tuple[tuple[int, int, int], ...]

    @property
    def input_span(self) -> tuple[int, int]:
        """[low, high) of the input positions to draw: the input, its padding, every linked one."""
        low = min([-self.padding_left] + [i for i, _, _ in self.links])
        high = max([self.size + self.padding_right] + [i + 1 for i, _, _ in self.links])
        return low, high

    @property
    def output_span(self) -> tuple[int, int]:
        """[low, high) of the output positions to draw: the output and any cropped cells."""
        low = min([0] + [o for _, o, _ in self.links])
        high = max([self.out] + [o + 1 for _, o, _ in self.links])
        return low, high

    def inputs_of(self, output: int) -> list[int]:
        """The input positions (padding included) that output position reads, in kernel order."""
        return [i for i, o, _ in self.links if o == output]

    def outputs_of(self, input_position: int) -> list[int]:
        """The output positions (cropped ones included) that an input position feeds."""
        return [o for i, o, _ in self.links if i == input_position]

    def to_dict(self) -> dict:
        """Plain numbers for a browser component (JSON)."""
        return {
            "mode": self.mode,
            "size": self.size,
            "kernel": self.kernel,
            "stride": self.stride,
            "padding_left": self.padding_left,
            "padding_right": self.padding_right,
            "dilation": self.dilation,
            "output_padding": self.output_padding,
            "ceil_mode": self.ceil_mode,
            "out": self.out,
            "links": [list(link) for link in self.links],
            "input_span": list(self.input_span),
            "output_span": list(self.output_span),
        }


def _checked(field: str, value: object) -> int:
    low, high = LAYER_BOUNDS[field]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ConfigError(field, value, f"a whole number from {low} to {high}")
    if not low <= int(value) <= high:
        raise ConfigError(field, int(value), f"a whole number from {low} to {high}")
    return int(value)


def layer_axis(
    mode: str,
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
    causal: bool = False,
    ceil_mode: bool = False,
) -> LayerAxis:
    """Check the numbers of one axis of a layer as PyTorch would and link its cells.

    convolution: Conv1d/Conv2d; `causal` pads dilation*(kernel-1) on the left only and nothing
    on the right, so output t reads inputs t and earlier (WaveNet, van den Oord et al. 2016; a
    TCN). transposed convolution: ConvTranspose1d/2d, each input cell adds the kernel times its
    value into `stride`-spaced output windows; `padding` crops the full output and
    `output_padding` adds cells at its end (Dumoulin & Visin, "A guide to convolution arithmetic
    for deep learning", 2016). pooling: MaxPool/AvgPool, whose windows count the padding but no
    weights. Raises ConfigError naming the field for anything PyTorch would reject, and for an
    output of no cells.
    """
    if mode not in LAYER_MODES:
        raise ConfigError("mode", mode, "one of " + ", ".join(LAYER_MODES))
    size, kernel, stride = (
        _checked(f, v) for f, v in (("size", size), ("kernel", kernel), ("stride", stride))
    )
    padding, dilation = _checked("padding", padding), _checked("dilation", dilation)
    output_padding = _checked("output_padding", output_padding)
    effective = dilation * (kernel - 1) + 1
    if mode == "transposed convolution":
        if output_padding >= max(stride, dilation):
            raise ConfigError(
                "output_padding",
                output_padding,
                f"less than the stride ({stride}) or the dilation ({dilation})",
                "PyTorch's rule: output padding only picks among the sizes a stride can give",
            )
        if causal or ceil_mode:
            raise ConfigError("mode", mode, "causal padding and ceil mode are not for it")
        full = (size - 1) * stride + effective
        out = full - 2 * padding + output_padding
        if out <= 0:
            raise ConfigError(
                "padding",
                padding,
                f"less than half of the full output ({full} cells)",
                "padding crops a transposed convolution's output on both ends",
            )
        links = tuple(
            (i, i * stride + k * dilation - padding, k) for i in range(size) for k in range(kernel)
        )
        left = right = 0
    else:
        if output_padding:
            raise ConfigError("output_padding", output_padding, "0: only for a transposed one")
        if mode == "pooling":
            if dilation != 1 or causal:
                field = "dilation" if dilation != 1 else "causal"
                raise ConfigError(
                    field, dilation if dilation != 1 else causal, "not for pooling here"
                )
            if 2 * padding > kernel:
                raise ConfigError(
                    "padding", padding, f"at most half the kernel ({kernel // 2})", "PyTorch's rule"
                )
        elif ceil_mode:
            raise ConfigError("ceil_mode", ceil_mode, "only for pooling")
        left, right = (effective - 1, 0) if causal else (padding, padding)
        if causal and padding:
            raise ConfigError(
                "padding", padding, "0 with causal padding", "causal padding sets the left padding"
            )
        if size + left + right < effective:
            raise ConfigError(
                "kernel",
                kernel,
                f"a window that fits the padded input ({size} + {left + right} = "
                f"{size + left + right} positions)",
                f"kernel {kernel} with dilation {dilation} spans {effective} positions; lower "
                "the kernel or the dilation, or add padding",
            )
        if mode == "pooling":
            out = pool_output_size(size, kernel, stride, padding, 1, ceil_mode)
        else:
            out = (size + left + right - effective) // stride + 1
        # A ceil-mode window may reach past the right padding: those positions do not exist.
        links = tuple(
            (o * stride + k * dilation - left, o, k)
            for o in range(out)
            for k in range(kernel)
            if o * stride + k * dilation < size + left + right
        )
    axis = LayerAxis(
        mode, size, kernel, stride, left, right, dilation, output_padding, ceil_mode, out, links
    )
    for what, (low, high) in (("input", axis.input_span), ("output", axis.output_span)):
        if high - low > MAX_DRAWN:
            raise ConfigError(
                "size",
                size,
                f"a layer whose {what} fits in {MAX_DRAWN} cells to draw",
                f"this one's {what} spans {high - low}",
            )
    return axis
