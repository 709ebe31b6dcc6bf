"""The Inspect page's layer helper: sizes and cell-by-cell links against PyTorch's own layers.

Each link (input, output, tap) is checked against the Jacobian of the real layer with a distinct
weight per tap, so a wrong position, a missing product or a wrong tap all show.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeparch.errors import ConfigError
from deeparch.introspection.convmath import LAYER_BOUNDS, MAX_DRAWN, layer_axis

TAPS = torch.tensor(
    [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10], dtype=torch.float64
)


def link_matrix(axis, rows: range, columns: range) -> torch.Tensor:
    """sum of the tap weights of the links, (output, input) over the given position ranges."""
    matrix = torch.zeros(len(rows), len(columns), dtype=torch.float64)
    for i, o, k in axis.links:
        if o in rows and i in columns:
            matrix[o - rows.start, i - columns.start] += TAPS[k]
    return matrix


def jacobian(function, n: int) -> torch.Tensor:
    x = torch.zeros(n, dtype=torch.float64)
    return torch.autograd.functional.jacobian(lambda v: function(v.view(1, 1, -1)).view(-1), x)


CONV_CASES = [
    (size, kernel, stride, padding, dilation)
    for size, kernel, stride, padding, dilation in itertools.product(
        (1, 5, 8, 13), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2)
    )
    if size + 2 * padding >= dilation * (kernel - 1) + 1
]


@pytest.mark.parametrize("size,kernel,stride,padding,dilation", CONV_CASES)
def test_convolution_links_are_the_jacobian_of_conv1d_on_the_padded_input(
    size, kernel, stride, padding, dilation
):
    axis = layer_axis("convolution", size, kernel, stride, padding, dilation)
    weight = TAPS[:kernel].view(1, 1, -1)
    real = nn.Conv1d(1, 1, kernel, stride, padding, dilation)(torch.zeros(1, 1, size))
    assert axis.out == real.shape[-1]
    padded = size + 2 * padding  # the same layer on an explicitly zero-padded input
    expected = jacobian(lambda v: F.conv1d(v, weight, stride=stride, dilation=dilation), padded)
    assert torch.equal(
        link_matrix(axis, range(axis.out), range(-padding, size + padding)), expected
    )
    assert axis.input_span == (-padding, size + padding)
    assert axis.output_span == (0, axis.out)


@pytest.mark.parametrize(
    "size,kernel,stride,dilation", [(10, 3, 1, 1), (10, 3, 1, 2), (12, 2, 1, 4), (9, 4, 2, 1)]
)
def test_causal_convolution_pads_the_left_only_and_never_reads_the_future(
    size, kernel, stride, dilation
):
    axis = layer_axis("convolution", size, kernel, stride, dilation=dilation, causal=True)
    left = dilation * (kernel - 1)
    assert (axis.padding_left, axis.padding_right) == (left, 0)
    weight = TAPS[:kernel].view(1, 1, -1)
    causal = jacobian(
        lambda v: F.conv1d(F.pad(v, (left, 0)), weight, stride=stride, dilation=dilation), size
    )
    assert axis.out == causal.shape[0] == (size - 1) // stride + 1
    assert torch.equal(link_matrix(axis, range(axis.out), range(size)), causal)
    # Output t reads input t (the newest tap) and earlier ones only.
    for o in range(axis.out):
        assert max(axis.inputs_of(o)) == o * stride
    if stride == 1:
        assert axis.out == size  # the sequence keeps its length


TRANSPOSED_CASES = [
    (size, kernel, stride, padding, dilation, output_padding)
    for size, kernel, stride, padding, dilation, output_padding in itertools.product(
        (1, 2, 5), (1, 3, 4, 8), (1, 2, 4), (0, 1, 3), (1, 2), (0, 1)
    )
    if output_padding < max(stride, dilation)
    and (size - 1) * stride + dilation * (kernel - 1) + 1 - 2 * padding + output_padding > 0
]


@pytest.mark.parametrize("size,kernel,stride,padding,dilation,output_padding", TRANSPOSED_CASES)
def test_transposed_links_are_the_jacobian_of_conv_transpose1d(
    size, kernel, stride, padding, dilation, output_padding
):
    axis = layer_axis(
        "transposed convolution", size, kernel, stride, padding, dilation, output_padding
    )
    weight = TAPS[:kernel].view(1, 1, -1)
    cropped = jacobian(
        lambda v: F.conv_transpose1d(
            v, weight, stride=stride, padding=padding, output_padding=output_padding,
            dilation=dilation,
        ),
        size,
    )  # fmt: skip
    assert axis.out == cropped.shape[0]
    assert torch.equal(link_matrix(axis, range(axis.out), range(size)), cropped)
    # Without the crop: the cells padding cuts off are the links outside [0, out).
    full = jacobian(lambda v: F.conv_transpose1d(v, weight, stride=stride, dilation=dilation), size)
    low, high = axis.output_span
    assert low == -padding
    rows = range(-padding, -padding + full.shape[0])
    assert torch.equal(link_matrix(axis, rows, range(size)), full)
    assert high == max(axis.out, -padding + full.shape[0])


def test_transposed_convolution_as_a_learnable_upsampler_2_to_12():
    axis = layer_axis("transposed convolution", 2, kernel=8, stride=4)
    assert axis.out == 12 == nn.ConvTranspose1d(1, 1, 8, 4)(torch.zeros(1, 1, 2)).shape[-1]
    assert axis.outputs_of(0) == list(range(0, 8))  # each input writes a kernel-wide window
    assert axis.outputs_of(1) == list(range(4, 12))  # a stride further on: 4 cells overlap
    assert sorted(axis.inputs_of(5)) == [0, 1]
    up = nn.ConvTranspose2d(1, 1, 8, 4)(torch.zeros(1, 1, 2, 2))
    assert tuple(up.shape[-2:]) == (axis.out, axis.out)


POOL_CASES = [
    (size, kernel, stride, padding, ceil_mode)
    for size, kernel, stride, padding, ceil_mode in itertools.product(
        (1, 4, 7, 10), (1, 2, 3, 4), (1, 2, 3), (0, 1, 2), (False, True)
    )
    if 2 * padding <= kernel and size + 2 * padding >= kernel
]


@pytest.mark.parametrize("size,kernel,stride,padding,ceil_mode", POOL_CASES)
def test_pooling_windows_are_those_of_avg_pool1d(size, kernel, stride, padding, ceil_mode):
    axis = layer_axis("pooling", size, kernel, stride, padding, ceil_mode=ceil_mode)
    pool = nn.MaxPool1d(kernel, stride, padding, ceil_mode=ceil_mode)
    assert axis.out == pool(torch.zeros(1, 1, size)).shape[-1]
    # Which real inputs each output averages (the padding holds no input to differentiate).
    reads = jacobian(
        lambda v: F.avg_pool1d(v, kernel, stride, padding, ceil_mode, count_include_pad=True),
        size,
    )
    links = link_matrix(axis, range(axis.out), range(size))
    assert torch.equal(links != 0, reads != 0)
    low, high = axis.input_span
    assert (low, high) == (-padding, size + padding)  # no window reads past the padding


@pytest.mark.parametrize("size,kernel,stride,padding", [(7, 3, 2, 1), (10, 5, 2, 0), (5, 2, 2, 1)])
def test_two_dimensional_sizes_match_conv2d_transpose2d_and_maxpool2d(
    size, kernel, stride, padding
):
    x = torch.zeros(1, 1, size, size)
    for mode, layer in (
        ("convolution", nn.Conv2d(1, 1, kernel, stride, padding)),
        ("transposed convolution", nn.ConvTranspose2d(1, 1, kernel, stride, padding)),
        ("pooling", nn.MaxPool2d(kernel, stride, padding)),
    ):
        out = layer_axis(mode, size, kernel, stride, padding).out
        assert tuple(layer(x).shape[-2:]) == (out, out), mode


@pytest.mark.parametrize(
    "call,field,value",
    [
        (dict(mode="convolution", size=7, kernel=0), "kernel", 0),
        (dict(mode="convolution", size=0, kernel=3), "size", 0),
        (dict(mode="convolution", size=33, kernel=3), "size", 33),
        (dict(mode="convolution", size=7, kernel=3, stride=0), "stride", 0),
        (dict(mode="convolution", size=7, kernel=3, padding=-1), "padding", -1),
        (dict(mode="convolution", size=7, kernel=2.5), "kernel", 2.5),
        (dict(mode="convolution", size=3, kernel=5), "kernel", 5),  # wider than the input
        (dict(mode="convolution", size=7, kernel=3, output_padding=1), "output_padding", 1),
        (dict(mode="convolution", size=7, kernel=3, ceil_mode=True), "ceil_mode", True),
        (dict(mode="convolution", size=7, kernel=3, padding=1, causal=True), "padding", 1),
        (dict(mode="pooling", size=7, kernel=3, padding=2), "padding", 2),
        (dict(mode="pooling", size=7, kernel=3, dilation=2), "dilation", 2),
        (
            dict(mode="transposed convolution", size=4, kernel=3, stride=2, output_padding=2),
            "output_padding",
            2,
        ),
        (dict(mode="transposed convolution", size=1, kernel=1, padding=1), "padding", 1),
        (dict(mode="transposed convolution", size=32, kernel=11, stride=6), "size", 32),
        (dict(mode="deconvolution", size=7, kernel=3), "mode", "deconvolution"),
    ],
)
def test_numbers_pytorch_would_reject_name_their_field(call, field, value):
    with pytest.raises(ConfigError) as error:
        layer_axis(**call)
    assert (error.value.field, error.value.value) == (field, value)
    assert str(error.value).startswith(f"{field}={value!r} is not allowed")


def test_the_largest_numbers_allowed_still_draw():
    high = {field: bound[1] for field, bound in LAYER_BOUNDS.items()}
    axis = layer_axis("convolution", high["size"], high["kernel"], padding=high["padding"])
    assert axis.input_span[1] - axis.input_span[0] <= MAX_DRAWN
    assert axis.to_dict()["links"][0] == [-high["padding"], 0, 0]
