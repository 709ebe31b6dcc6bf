"""Lessons on convolutions: output sizes, 1x1 reductions, causal padding, transposed upsampling.

Exact computations: real PyTorch layers, checked against the arithmetic in
deeparch.introspection.convmath (Dumoulin & Visin 2016, "A guide to convolution arithmetic").
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from deeparch.engine.handle import JobHandle
from deeparch.introspection.convmath import conv_output_size
from deeparch.introspection.table import layer_table
from deeparch.lessons.measure import generator, seeded_module
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.models.inception import GOOGLENET_WIDTHS, BranchWidths, InceptionModule

ARITHMETIC_SOURCE = (
    "V. Dumoulin and F. Visin, A guide to convolution arithmetic for deep learning "
    "(arXiv:1603.07285, 2016), sec. 2 and 4"
)


def torch_length(layer: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The spatial sizes PyTorch's own layer gives a zero input of `shape` (batch included)."""
    with torch.no_grad():
        return tuple(layer(torch.zeros(shape)).shape[2:])


def judge_arithmetic(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    cases = {
        "3x3 input, 2x2 filter": (
            conv_output_size(3, 2),
            torch_length(nn.Conv2d(1, 1, 2), (1, 1, 3, 3)),
            (2, 2),
        ),
        "28x28 input, 3x3 filter, same padding": (
            conv_output_size(28, 3, padding=1),
            torch_length(nn.Conv2d(1, 1, 3, padding="same"), (1, 1, 28, 28)),
            (28, 28),
        ),
        "10-element sequence, filter 5, stride 2": (
            conv_output_size(10, 5, stride=2),
            torch_length(nn.Conv1d(1, 1, 5, stride=2), (1, 1, 10)),
            (3,),
        ),
    }
    measured = {
        label: {"formula": formula, "pytorch": list(sizes), "expected": list(expected)}
        for label, (formula, sizes, expected) in cases.items()
    }
    held = all(
        all(size == formula for size in sizes) and sizes == expected
        for formula, sizes, expected in cases.values()
    )
    return Outcome(
        "convolution_arithmetic",
        held=held,
        verdict="floor((n + 2p - k) / s) + 1 and PyTorch agree: 3x3 with 2x2 gives 2x2, same "
        "padding keeps 28x28, and 10 with filter 5, stride 2 gives 3",
        measured=measured,
        answer=cases["10-element sequence, filter 5, stride 2"][0],
    )


def inception_3a(reductions: bool) -> InceptionModule:
    """GoogLeNet's inception (3a) at full width: 192 channels in, 256 out, on 28x28 maps."""
    return InceptionModule(192, BranchWidths(*GOOGLENET_WIDTHS[0]), reductions=reductions)


def judge_reductions(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    measured = {}
    for label, reductions in (("with 1x1 reductions", True), ("without", False)):
        table = layer_table(inception_3a(reductions), (192, 28, 28))
        measured[label] = {
            "parameters": table.total_params,
            "mult_adds": table.total_mult_adds,
            "output_shape": list(table.rows[-1].output_shape or ()),
        }
    with_1x1, without = measured["with 1x1 reductions"], measured["without"]
    held = with_1x1["parameters"] == 163_696 and without["parameters"] == 393_472
    ratio = without["mult_adds"] / with_1x1["mult_adds"]
    return Outcome(
        "one_by_one_convolution",
        held=held and ratio > 2,
        verdict=f"inception (3a) holds {with_1x1['parameters']:,} parameters with its 1x1 "
        f"reductions and {without['parameters']:,} without; the mult-adds per 28x28 image are "
        f"{with_1x1['mult_adds']:,} against {without['mult_adds']:,} ({ratio:.1f}x)",
        measured={**measured, "mult_add_ratio": round(ratio, 3)},
        answer=with_1x1["parameters"],
    )


def input_gradients(conv: nn.Conv1d, length: int, left_pad: int, t: int) -> torch.Tensor:
    """d output[t] / d input[s] for every s (length,), through a Conv1d padded on the left."""
    x = torch.randn(1, conv.in_channels, length, generator=generator(1)).requires_grad_(True)
    y = conv(nn.functional.pad(x, (left_pad, 0)))
    (gradient,) = torch.autograd.grad(y[0, :, t].sum(), x)
    return gradient[0].abs().sum(dim=0)  # (C, T) -> (T,)


def judge_causal(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    kernel, dilation, length, t = 3, 2, 16, 7
    causal = seeded_module(lambda: nn.Conv1d(2, 4, kernel, dilation=dilation))
    centred = seeded_module(
        lambda: nn.Conv1d(2, 4, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
    )
    reach = dilation * (kernel - 1)
    causal_grad = input_gradients(causal, length, reach, t)
    centred_grad = input_gradients(centred, length, 0, t)
    future_causal = float(causal_grad[t + 1 :].abs().max())
    future_centred = float(centred_grad[t + 1 :].abs().max())
    held = future_causal == 0.0 and future_centred > 0.0
    return Outcome(
        "causal_convolution",
        held=held,
        verdict=f"with {reach} cells of left padding, output {t} has gradient exactly "
        f"{future_causal:g} with respect to every later input; padded on both sides, the "
        f"largest is {future_centred:.3g}",
        measured={
            "kernel": kernel,
            "dilation": dilation,
            "t": t,
            "max_future_gradient_causal": future_causal,
            "max_future_gradient_centred": future_centred,
            "inputs_read_causal": [int(s) for s in torch.nonzero(causal_grad).flatten()],
        },
        series={
            f"|d y[{t}] / d x[s]| per input s": {
                "input position s": list(range(len(causal_grad))),
                "causal (left padding)": causal_grad.tolist(),
                "centred padding": centred_grad.tolist(),
            }
        },
        series_x={f"|d y[{t}] / d x[s]| per input s": "input position s"},
        answer=0,
    )


def judge_transposed(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    up = nn.ConvTranspose1d(1, 1, kernel_size=8, stride=4)
    with torch.no_grad():
        out_length = up(torch.zeros(1, 1, 2)).shape[-1]
    rule = conv_output_size(2, 8, stride=4, transposed=True)
    # Every output cell a 2-cell input writes: input i writes cells 4i .. 4i + 7.
    weights = sum(p.numel() for p in up.parameters())
    held = out_length == rule == 12
    return Outcome(
        "transposed_convolution",
        held=held,
        verdict=f"(2 - 1) x 4 + 8 = {rule}; PyTorch's ConvTranspose1d gives {out_length}, "
        f"learning its upsampling with {weights} parameters",
        measured={"output_length": out_length, "rule": rule, "parameters": weights},
        answer=out_length,
    )


register(
    Lesson(
        name="convolution_arithmetic",
        title="Convolution arithmetic",
        claim="A convolution of kernel k, stride s and padding p turns n cells into "
        "floor((n + 2p - k) / s) + 1: a 3x3 input with 2x2 filters gives 2x2, 'same' padding "
        "keeps the size, and a 10-element sequence with a filter of 5 and stride 2 gives 3.",
        source=ARITHMETIC_SOURCE,
        prediction=Prediction(
            "number", "A 10-element sequence, filter size 5, stride 2: how many outputs?", answer=3
        ),
        judge=judge_arithmetic,
        exact=True,
        position=2,
    )
)
register(
    Lesson(
        name="one_by_one_convolution",
        title="A 1x1 convolution pools channels",
        claim="A 1x1 convolution mixes channels at each pixel; put before a 3x3 or 5x5 "
        "convolution it shrinks the channels that convolution reads. GoogLeNet's inception (3a) "
        "holds 163,696 parameters with its 1x1 reductions and 393,472 without.",
        source="C. Szegedy et al., Going deeper with convolutions (CVPR 2015), sec. 4 and "
        "Table 1; M. Lin, Q. Chen, S. Yan, Network in Network (ICLR 2014)",
        prediction=Prediction(
            "number",
            "Inception (3a) with its 1x1 reductions: how many parameters?",
            answer=163_696,
            tolerance=0.05,
        ),
        judge=judge_reductions,
        setup={"arch": "inception", "dataset": "mnist"},
        exact=True,
        position=3,
    )
)
register(
    Lesson(
        name="causal_convolution",
        title="A causal convolution never sees the future",
        claim="Padding a 1-D convolution on the left only, by dilation x (kernel - 1), makes "
        "output t depend on inputs up to t: its gradient with respect to every later input is "
        "exactly zero. Padded on both sides, it is not.",
        source="A. van den Oord et al., WaveNet: A generative model for raw audio "
        "(arXiv:1609.03499, 2016), sec. 2.1; S. Bai, J. Z. Kolter, V. Koltun, An empirical "
        "evaluation of generic convolutional and recurrent networks (arXiv:1803.01271, 2018)",
        prediction=Prediction(
            "number",
            "The largest gradient of output 7 with respect to inputs 8 and later (causal)?",
            answer=0,
        ),
        judge=judge_causal,
        setup={"arch": "tcn", "dataset": "mnist1d"},
        exact=True,
        position=6,
    )
)
register(
    Lesson(
        name="transposed_convolution",
        title="A transposed convolution is a learnable upsampler",
        claim="A transposed convolution turns n cells into (n - 1) x stride - 2 x padding + "
        "kernel: with kernel 8 and stride 4, 2 cells become 12, each input writing an 8-cell "
        "window with weights that are learned.",
        source=ARITHMETIC_SOURCE + "; J. Long, E. Shelhamer, T. Darrell, Fully convolutional "
        "networks for semantic segmentation (CVPR 2015), sec. 3.3",
        prediction=Prediction(
            "number", "2 cells, kernel 8, stride 4, no padding: how many outputs?", answer=12
        ),
        judge=judge_transposed,
        setup={"arch": "conv_autoencoder", "dataset": "mnist"},
        exact=True,
        position=7,
    )
)
