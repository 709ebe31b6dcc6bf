"""Lessons on layers that are other layers in disguise: an MLP as kernel-1 convolutions, an
embedding as a one-hot vector times a linear layer. Exact computations on real PyTorch layers."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from deeparch.data import load_dataset
from deeparch.engine.handle import JobHandle
from deeparch.lessons.measure import (
    generator,
    load_average,
    seconds_per_call,
    seeded_model,
    seeded_module,
)
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.models.mlp import MLPConv1d

FLOAT_TOLERANCE = 1e-5  # float32 sums in another order differ by a few units in the last place


def judge_mlp_conv1d(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    mlp = seeded_model("mlp", {"dropout": 0.0}, "mnist", seed=0).eval()
    conv = seeded_model("mlp_conv1d", {"dropout": 0.0}, "mnist", seed=1).eval()
    assert isinstance(conv, MLPConv1d)
    images = load_dataset("mnist").x_val[: 64 if budget == "ci" else 1000]
    with torch.no_grad():
        before = float((mlp(images) - conv(images)).abs().max())
        conv.load_linear_weights(mlp)
        after = float((mlp(images) - conv(images)).abs().max())
    held = after <= FLOAT_TOLERANCE < before
    return Outcome(
        "mlp_is_conv1d",
        held=held,
        verdict=f"with each Linear's (out, in) weight copied into a Conv1d's (out, in, 1), the "
        f"largest difference over {len(images)} images is {after:.2g} (float precision); "
        f"before the copy it was {before:.3g}",
        measured={"images": len(images), "max_difference": after, "before_copy": before},
        answer=0,
    )


def judge_embedding(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    vocabulary, width, tokens = 1000, 64, 4096
    embedding = seeded_module(lambda: nn.Embedding(vocabulary, width))
    linear = seeded_module(lambda: nn.Linear(vocabulary, width, bias=False))
    with torch.no_grad():
        linear.weight.copy_(embedding.weight.T)  # Linear stores (out, in) = (width, vocabulary)
    ids = torch.randint(0, vocabulary, (tokens,), generator=generator(0))
    one_hot = nn.functional.one_hot(ids, vocabulary).float()  # (tokens, vocabulary)
    with torch.no_grad():
        difference = float((embedding(ids) - linear(one_hot)).abs().max())
        min_seconds = 0.02 if budget == "ci" else 0.3
        lookup_s = seconds_per_call(lambda: embedding(ids), min_seconds)
        matmul_s = seconds_per_call(lambda: linear(one_hot), min_seconds)
    speedup = matmul_s / lookup_s
    return Outcome(
        "embedding_is_one_hot",
        held=difference <= FLOAT_TOLERANCE,
        verdict=f"embedding(ids) and one_hot(ids) @ W agree to {difference:.2g}; here the lookup "
        f"took {lookup_s * 1e6:,.0f} us and the matmul {matmul_s * 1e6:,.0f} us for {tokens:,} "
        f"tokens of a {vocabulary:,}-word vocabulary ({speedup:.1f}x; load average "
        f"{load_average()})",
        measured={
            "max_difference": difference,
            "lookup_us": round(lookup_s * 1e6, 1),
            "matmul_us": round(matmul_s * 1e6, 1),
            "matmul_over_lookup": round(speedup, 2),
            "vocabulary": vocabulary,
            "tokens": tokens,
            "load_average": load_average(),
        },
        answer="the lookup" if speedup > 1 else "the matmul",
    )


register(
    Lesson(
        name="mlp_is_conv1d",
        title="An MLP is a kernel-1 Conv1d",
        claim="A Conv1d of kernel size 1 applies one Linear layer at every position; with the "
        "MLP's weights copied across, the two networks give equal outputs to float precision.",
        source="M. Lin, Q. Chen, S. Yan, Network in Network (ICLR 2014), sec. 3.1 (mlpconv); "
        "PyTorch documentation, torch.nn.Conv1d",
        prediction=Prediction(
            "number",
            "After the copy, the largest difference between the outputs?",
            answer=0,
            tolerance=1.0,
        ),  # fmt: skip
        judge=judge_mlp_conv1d,
        setup={"arch": "mlp_conv1d", "dataset": "mnist"},
        exact=True,
        position=4,
    )
)
register(
    Lesson(
        name="embedding_is_one_hot",
        title="An embedding is a one-hot vector times a linear layer",
        claim="nn.Embedding looks up row i of its weight; multiplying the one-hot vector of i by "
        "the same matrix gives the same row, at the cost of a full matrix product, so the lookup "
        "is the cheaper way to the same numbers.",
        source="I. Goodfellow, Y. Bengio, A. Courville, Deep Learning (MIT Press 2016), sec. "
        "12.4.2; PyTorch documentation, torch.nn.Embedding",
        prediction=Prediction(
            "choice",
            "Which is faster for 4,096 tokens of a 1,000-word vocabulary?",
            choices=("the lookup", "the matmul"),
        ),
        judge=judge_embedding,
        note="The timing is of this machine now (load average beside it), so it is measured "
        "once per visit, not cached.",
        position=5,
    )
)
