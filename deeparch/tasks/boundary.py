"""The decision regions of a classifier of 2-D points, as TensorFlow Playground draws them: the
model's class probabilities on a grid over the data, recomputed at every snapshot.

The grid spans the points it is given with a margin, so successive snapshots of the same
validation points share one grid and only the regions move.
"""

from __future__ import annotations

from typing import Any

import torch

from deeparch.tasks.base import evaluation_mode, to_numpy

GRID_SIZE = 60  # 60 x 60 = 3,600 points: one batch, a few ms for an MLP
GRID_MARGIN = 0.1  # of the data's extent, on each side


def grid_axes(points: torch.Tensor, size: int = GRID_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """(xs, ys), each (size,): evenly spaced over the points' extent plus a margin."""
    low, high = points.min(dim=0).values, points.max(dim=0).values
    pad = (high - low).clamp(min=1e-3) * GRID_MARGIN
    low, high = low - pad, high + pad
    xs = torch.linspace(float(low[0]), float(high[0]), size, device=points.device)
    ys = torch.linspace(float(low[1]), float(high[1]), size, device=points.device)
    return xs, ys


def grid_points(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """(len(ys) * len(xs), 2): row r, column c is the point (xs[c], ys[r])."""
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(N, K) probabilities; one logit column (N, 1) is the probability of class 1 (K = 2)."""
    if logits.shape[1] == 1:
        p1 = torch.sigmoid(logits[:, 0])
        return torch.stack([1.0 - p1, p1], dim=1)
    return torch.softmax(logits, dim=1)


def decision_boundary(
    model: torch.nn.Module, points: torch.Tensor, labels: torch.Tensor, size: int = GRID_SIZE
) -> dict[str, Any]:
    """xs (S,), ys (S,), probabilities (S, S, K) and predicted class (S, S) on the grid, row r
    being ys[r]; and the points (N, 2) with their labels, to draw on top."""
    xs, ys = grid_axes(points, size)
    with evaluation_mode(model):
        probabilities = class_probabilities(model(grid_points(xs, ys)))
    probabilities = probabilities.reshape(len(ys), len(xs), -1)
    return {
        "xs": to_numpy(xs),
        "ys": to_numpy(ys),
        "probabilities": to_numpy(probabilities),
        "predicted": to_numpy(probabilities.argmax(dim=2)),
        "points": to_numpy(points),
        "labels": to_numpy(labels),
    }
