"""The optional pieces of an exported script (deeparch.export.script), each written only where
the run uses it: the device choice, the learning-rate schedule, early stopping, and dropout drawn
from the run's own generator. Each copies or mirrors deeparch's own code, so the script trains as
the engine does."""

from __future__ import annotations

import inspect

from deeparch.engine.config import TrainConfig
from deeparch.engine.schedule import LR_FLOOR, LR_SCHEDULES, scheduled_lr
from deeparch.randomness import drop_with


def dropout_code() -> str:
    """deeparch's dropout (the mask function copied in) drawing from MASKS, the run's own
    generator, reseeded before every step as the engine reseeds the job's."""
    return f'''
{inspect.getsource(drop_with)}

class Dropout(nn.Dropout):
    """nn.Dropout whose masks come from MASKS, the run's own generator, as deeparch draws them
    from the job's (nn.Dropout's, from torch's global generator, would be other masks)."""

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return nn.functional.dropout(x, self.p, self.training, self.inplace)
        return drop_with(x, self.p, MASKS, self.inplace)

'''


def device_code(device: str) -> str:
    """The lines that choose the device as deeparch does (device=auto: CUDA, MPS, then CPU)."""
    if device != "auto":
        return f'DEVICE = torch.device("{device}")'
    return """# device=auto: a CUDA GPU, then Apple's MPS, then the CPU
if torch.cuda.is_available():
    DEVICE = torch.device("cuda")
elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
    DEVICE = torch.device("mps")
else:
    DEVICE = torch.device("cpu")"""


def schedule_code(config: TrainConfig) -> str:
    """deeparch's schedule function and the lines that set each step's rate from it."""
    return f'''
LR_SCHEDULES, LR_FLOOR = {LR_SCHEDULES!r}, {LR_FLOOR!r}
LR, LR_SCHEDULE = {float(config.lr)!r}, {config.lr_schedule!r}
LR_STEP_EPOCHS, LR_GAMMA = {int(config.lr_step_epochs)!r}, {float(config.lr_gamma)!r}


{inspect.getsource(scheduled_lr)}

def set_learning_rate(step, total, steps_per_epoch):
    """The rate of this step from the schedule (never below LR_FLOOR), as deeparch sets it."""
    factor = scheduled_lr(LR_SCHEDULE, 1.0, step, total, steps_per_epoch, LR_STEP_EPOCHS, LR_GAMMA)
    for group in optimizer.param_groups:
        group["lr"] = max(LR * factor, LR_FLOOR)
'''


def early_stopping_code(patience: int) -> str:
    """An early stopper that keeps the best epoch's weights, as deeparch's EarlyStopping does."""
    return f'''

class EarlyStopping:
    """Stop when val_loss has not improved for `patience` epochs, and end with the weights of
    the best epoch (Keras' EarlyStopping with restore_best_weights; Prechelt 1998)."""

    def __init__(self, patience):
        self.patience, self.waited = patience, 0
        self.best, self.best_epoch, self.best_state = None, None, None

    def should_stop(self, epoch, val_loss):
        if not math.isfinite(val_loss):
            return False
        if self.best is None or val_loss < self.best:
            self.best, self.best_epoch, self.waited = val_loss, epoch, 0
            self.best_state = {{k: v.detach().clone() for k, v in model.state_dict().items()}}
        else:
            self.waited += 1
        return self.waited >= self.patience

    def restore(self, final_val_loss):
        """Load the best epoch's weights, unless the last ones are as good."""
        if self.best_state is None:
            return False
        if math.isfinite(final_val_loss) and final_val_loss <= self.best:
            return False
        model.load_state_dict(self.best_state)
        return True


stopping = EarlyStopping({patience})  # early_stopping: the patience, in epochs
'''
