"""Per-layer statistics of a model now: histograms of weights and of their last gradients, and
norms (TensorBoard's histograms; the per-layer gradient norms of Glorot & Bengio 2010, figure 7).

A layer is a weight tensor of two or more dimensions (a Linear's or a convolution's; biases and
norm scales left out, as in the L1 penalty), named by its parameter name. Histograms use their
own range per layer and moment (symmetric about 0, up to the largest magnitude), so the edges
go with the counts; the figures draw each histogram as a curve over its own values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

HISTOGRAM_BINS = 30
# Within this of zero a weight counts as zero in weight_near_zero: an L1 subgradient step lands
# near zero and hovers there, it never lands on 0.0 exactly (Tibshirani's lasso solved exactly
# would; SGD does not). 1e-4, not 1e-3: after 10 epochs L2's geometric decay takes the weights of
# MNIST's always-black border pixels below 1e-3 too (21% of them), but below 1e-4 only 2%.
NEAR_ZERO_WEIGHT = 1e-4


def histogram(values: torch.Tensor, bins: int = HISTOGRAM_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(counts (bins,), edges (bins + 1,)) of a tensor over [-m, m], m its largest magnitude."""
    flat = values.detach().float().flatten()
    limit = float(flat.abs().max()) if flat.numel() else 0.0
    limit = limit if np.isfinite(limit) and limit > 0 else 1.0
    counts = torch.histc(flat, bins=bins, min=-limit, max=limit)
    edges = np.linspace(-limit, limit, bins + 1, dtype=np.float64)
    return counts.to("cpu", torch.float64).numpy(), edges


def layer_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The model's weight tensors (two or more dimensions), in registration order."""
    return [(name, p) for name, p in model.named_parameters() if p.dim() > 1]


def layer_statistics(model: nn.Module, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """names (a list of L), trainable (L,), weight_counts/weight_edges and grad_counts/grad_edges
    (L, bins) and (L, bins + 1), weight_norm and grad_norm (L,) (NaN where a layer has no
    gradient yet: before the first step, or frozen), weight_near_zero (L,): the fraction of each
    layer's weights within NEAR_ZERO_WEIGHT of zero (how sparse L1 has made it)."""
    layers = layer_weights(model)
    names, trainable = [], []
    weight_counts, weight_edges, grad_counts, grad_edges = [], [], [], []
    weight_norm, grad_norm, near_zero = [], [], []
    no_counts, no_edges = np.full(bins, np.nan), np.full(bins + 1, np.nan)
    with torch.no_grad():
        for name, param in layers:
            names.append(name)
            trainable.append(bool(param.requires_grad))
            counts, edges = histogram(param, bins)
            weight_counts.append(counts)
            weight_edges.append(edges)
            weight_norm.append(float(param.detach().float().norm()))
            near_zero.append(float((param.detach().abs() < NEAR_ZERO_WEIGHT).float().mean()))
            if param.grad is None:
                grad_counts.append(no_counts)
                grad_edges.append(no_edges)
                grad_norm.append(float("nan"))
                continue
            counts, edges = histogram(param.grad, bins)
            grad_counts.append(counts)
            grad_edges.append(edges)
            grad_norm.append(float(param.grad.detach().float().norm()))
    shape = (len(names), bins)
    return {
        "names": list(names),
        "trainable": np.array(trainable, dtype=bool),
        "weight_counts": np.array(weight_counts).reshape(shape),
        "weight_edges": np.array(weight_edges).reshape(len(names), bins + 1),
        "grad_counts": np.array(grad_counts).reshape(shape),
        "grad_edges": np.array(grad_edges).reshape(len(names), bins + 1),
        "weight_norm": np.array(weight_norm, dtype=np.float64),
        "grad_norm": np.array(grad_norm, dtype=np.float64),
        "weight_near_zero": np.array(near_zero, dtype=np.float64),
    }
