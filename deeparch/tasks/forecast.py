"""Forecasting: mean squared error of the next value at every step (many-to-many), and the
forecast over a horizon rolled out from the model's own predictions, against the truth."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from deeparch.tasks.base import SHOW_EXAMPLES, Task, evaluation_mode, to_numpy


def horizon_errors(model: Any, x: torch.Tensor, horizon: int) -> tuple[torch.Tensor, ...]:
    """Roll out the last `horizon` steps of windows x (N, T, 1) from the steps before them.

    Returns (forecast (N, horizon, 1), squared error per horizon step (horizon,), and the same
    for the naive forecast that repeats the last value of the context, the baseline to beat)."""
    context, truth = x[:, :-horizon], x[:, -horizon:]
    forecast = model.rollout(context, horizon)
    error = ((forecast - truth) ** 2).mean(dim=(0, 2))
    naive = ((context[:, -1:] - truth) ** 2).mean(dim=(0, 2))
    return forecast, error, naive


class ForecastTask(Task):
    """model(x) -> next values (N, T, 1) against y[t] = x[t + 1]."""

    name = "forecast"

    @dataclasses.dataclass(frozen=True)
    class Settings:
        horizon: int = 16  # steps rolled out in evaluation and the snapshot

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(self.model(x), y)
        return {"loss": mse, "mse": mse.detach()}

    def eval_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = self.loss_terms(x, y)
        _forecast, error, naive = horizon_errors(self.model, x, int(self.settings.horizon))
        terms["horizon_mse"] = error.mean()
        terms["naive_horizon_mse"] = naive.mean()
        return terms

    def snapshot(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        horizon = int(self.settings.horizon)
        with evaluation_mode(self.model):
            forecast, error, naive = horizon_errors(self.model, x, horizon)
            one_step = self.model(x[:SHOW_EXAMPLES])
        return {
            "series": to_numpy(x[:SHOW_EXAMPLES, :, 0]),  # (S, T): context, then the truth
            "forecast": to_numpy(forecast[:SHOW_EXAMPLES, :, 0]),  # (S, horizon)
            "one_step": to_numpy(one_step[:, :, 0]),  # (S, T): the prediction of x[t + 1]
            "next_values": to_numpy(y[:SHOW_EXAMPLES, :, 0]),
            "horizon_mse": to_numpy(error),  # (horizon,) over every snapshot window
            "naive_horizon_mse": to_numpy(naive),
        }
