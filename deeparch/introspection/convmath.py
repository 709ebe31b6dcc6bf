"""Convolution and pooling arithmetic: output sizes and receptive fields, without any layers."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
