"""When a run has diverged: a non-finite loss term, a loss 1000x its first value, NaN weights, or
a layer whose output is no longer finite."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

# A loss this many times its first value is divergence (finite or not: the weights are ruined).
EXPLOSION_FACTOR = 1000.0
# The gradient-norm clip suggested to a recurrent model that diverged: the exploding-gradients
# lesson (deeparch.lessons.recurrent) checks that at this value a relu RNN trains where it
# diverges unclipped (clipping the norm: Pascanu, Mikolov & Bengio 2013).
HELPFUL_GRAD_CLIP = 1.0


def is_recurrent(model: nn.Module) -> bool:
    """Whether the model has a recurrent layer (torch's RNN, LSTM or GRU): its gradient is a
    product over time steps and can explode, which a smaller learning rate alone may not cure."""
    return any(isinstance(module, nn.RNNBase) for module in model.modules())


def remedy(lr: float, recurrent: bool = False, grad_clip: float = 0.0) -> str:
    """What a diverged run should try: a smaller learning rate, and for a recurrent model the
    gradient clipping that tames exploding gradients (a tighter one where it clips already)."""
    advice = f"try a learning rate below {lr:g}"
    if not recurrent or 0 < grad_clip <= HELPFUL_GRAD_CLIP:
        return advice
    clip = f"{HELPFUL_GRAD_CLIP:g} (the gradient norm of a recurrent network can explode)"
    if grad_clip > 0:
        return f"{advice}, or lower grad_clip from {grad_clip:g} to {clip}"
    return f"{advice}, or set grad_clip to {clip}"


def weights_finite(model: nn.Module) -> bool:
    with torch.no_grad():
        return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _finite(value: object) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, tuple | list):
        return all(_finite(item) for item in value)
    return True


def first_nonfinite_output(model: nn.Module, run: Callable[[], object]) -> str | None:
    """The first layer (in the order they ran) whose output is NaN or infinite while `run()` calls
    the model; None when every output is finite.

    Weights can be finite while a forward pass overflows (a VAE at lr 10: exp(logvar) becomes
    infinite, and the loss function then refuses its NaN input with an error of its own). `run`
    may raise: what was seen before it did still counts.
    """
    found: list[str] = []

    def hook(name: str) -> Callable:
        def record(_module: nn.Module, _inputs: tuple, output: object) -> None:
            if not found and not _finite(output):
                found.append(name or type(model).__name__)

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in model.named_modules()]
    try:
        with torch.no_grad():
            run()
    except Exception:  # noqa: BLE001 (the run is a probe after a failure; its own error is known)
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else None


def explosion_reason(
    first_loss: float,
    loss: float,
    step: int,
    lr: float,
    recurrent: bool = False,
    grad_clip: float = 0.0,
) -> str | None:
    """The reason a job diverged when its loss rose EXPLOSION_FACTOR times above its first value.

    Such a loss is finite, but the weights are ruined: a ReLU network's units die, the loss falls
    back to a constant and the run would "finish" at chance level (SGD at lr 10 on the MLP: from
    2.3 to 1e16 and back). None while the loss stays below that. `recurrent` and `grad_clip`
    choose the advice (remedy).
    """
    if loss > EXPLOSION_FACTOR * max(abs(first_loss), 1e-3):
        return f"the loss exploded from {first_loss:.3g} to {loss:.3g} at step {step}; " + remedy(
            lr, recurrent, grad_clip
        )
    return None


def divergence_reason(
    losses: dict[str, float],
    step: int,
    lr: float,
    recurrent: bool = False,
    grad_clip: float = 0.0,
) -> str | None:
    """The reason a job diverged when a loss term is NaN or infinite; None when all are finite."""
    for term, value in losses.items():
        if not math.isfinite(value):
            kind = "NaN" if math.isnan(value) else "infinite"
            return f"{term} became {kind} at step {step}; " + remedy(lr, recurrent, grad_clip)
    return None


def loss_explosion_note(
    losses: Mapping[str, Sequence[Sequence[float]]], lr: float, factor: float = EXPLOSION_FACTOR
) -> str | None:
    """Why a run that ended without NaN still went wrong: its loss exploded on the way.

    A ReLU network hit by a huge step often does not reach NaN: its units die, the loss falls
    back to a constant and the run "finishes" at chance level. None when the loss never rose
    above `factor` times its first value.
    """
    points = losses.get("loss") or []
    if len(points) < 2:
        return None
    first = abs(points[0][1])
    peak_step, peak = max(points, key=lambda point: point[1])
    if peak <= factor * max(first, 1e-3):
        return None
    return (
        f"The loss exploded from {first:.3g} to {peak:.3g} at step {int(peak_step)}: a learning "
        f"rate of {lr:g} throws the weights so far that units die, and the network stops "
        "learning. Try a learning rate 10 to 100 times smaller, or set grad_clip."
    )
