"""TrainConfig: one training run's settings, each field with its default, bounds and reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deeparch.config import FieldSpec, check_value, coerce, config_to_dict, field_specs, hp
from deeparch.data import dataset_info, list_datasets
from deeparch.data.subsets import parse_classes, subset_info
from deeparch.engine.optim import (
    DEFAULT_MOMENTUM,
    DEVICE_CHOICES,
    MOMENTUM_OPTIMIZERS,
    OPTIMIZERS,
    choose_device,
    device_available,
)
from deeparch.engine.schedule import LR_FLOOR, LR_SCHEDULES
from deeparch.errors import ConfigError, UnknownNameError
from deeparch.models import build_config, get_arch, list_archs
from deeparch.models.registry import check_compatible
from deeparch.tasks.reconstruct import RECONSTRUCTION_LOSSES, RECONSTRUCTION_TASKS

# The fields of TrainConfig that are hyperparameters of training (widgets); the others say what
# is trained on what.
IDENTITY_FIELDS = ("arch", "dataset", "arch_config")
# The tasks whose labels are class ids, so a subset of the classes can be trained on.
CLASS_SUBSET_TASKS = ("classify", "sequence")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: which architecture on which data, and how to optimise it."""

    arch: str = hp("mlp", "Architecture name, one of deeparch.models.list_archs()")
    dataset: str | None = hp(None, "Dataset name; None trains on the architecture's default")
    arch_config: dict = dataclasses.field(
        default_factory=dict,
        metadata={"help": "The architecture's own hyperparameters (its config's fields)"},
    )
    optimizer: str = hp(
        "adam",
        "Update rule: sgd (with momentum: see momentum), adam, adamw, rmsprop, adagrad or adadelta "
        "(Zeiler 2012: its steps are sized by past updates; lr 1.0 is the paper's)",
        choices=tuple(OPTIMIZERS),
    )
    lr: float = hp(
        1e-3,
        "Learning rate: the step size of each update; too large diverges",
        min=LR_FLOOR,
        max=10.0,
        log=True,
    )
    momentum: float = hp(
        DEFAULT_MOMENTUM,
        "sgd only: the fraction of the last update carried into the next (a heavy ball rolling "
        "down the loss, Sutskever et al. 2013); 0 is plain SGD",
        min=0.0,
        max=0.999,
        step=0.01,
    )
    batch_size: int = hp(
        64,
        "Samples per update: larger means smoother gradients and more samples/s",
        min=1,
        max=4096,
    )
    epochs: int = hp(2, "Passes over the training set", min=1, max=1000)
    weight_decay: float = hp(
        0.0,
        "L2 penalty on the weights, applied by the optimizer (shrinks weights every step)",
        min=0.0,
        max=1.0,
        step=1e-4,
    )
    l1: float = hp(
        0.0,
        "L1 penalty on the weights added to the loss (drives weights to exactly zero)",
        min=0.0,
        max=1.0,
        step=1e-5,
    )
    grad_clip: float = hp(
        0.0,
        "Clip the gradient norm to this value (0: off); tames exploding gradients in RNNs",
        min=0.0,
        max=1000.0,
        step=0.1,
    )
    seed: int = hp(
        0, "Seed of initial weights, shuffling and noise: same seed, same run", min=0, max=2**31 - 1
    )
    device: str = hp(
        "auto",
        "Where to train: auto takes a CUDA GPU, then Apple MPS, then the CPU",
        choices=DEVICE_CHOICES,
    )
    snapshot_every: int = hp(
        50,
        "Steps between snapshots (reconstructions, samples, confusion matrix)",
        min=1,
        max=100_000,
    )
    max_steps: int = hp(
        0, "Stop after this many steps (0: train all epochs)", min=0, max=10_000_000
    )
    lr_schedule: str = hp(
        "constant",
        "How the learning rate changes: constant; step (times lr_gamma every lr_step_epochs "
        "epochs); cosine (from lr down to 0 over the run, Loshchilov & Hutter 2017)",
        choices=LR_SCHEDULES,
    )
    lr_step_epochs: int = hp(
        1, "step schedule: epochs between two cuts of the learning rate", min=1, max=1000
    )
    lr_gamma: float = hp(
        0.1, "step schedule: the factor of each cut", min=0.001, max=1.0, step=0.01
    )
    early_stopping: int = hp(
        0,
        "Patience: stop when val_loss has not improved for this many epochs, and keep the "
        "weights of the best epoch (0: off)",
        min=0,
        max=1000,
    )
    train_subset: int = hp(
        0,
        "Train on only this many training samples, the same ones for a seed and stratified by "
        "class (0: all); a small subset shows overfitting",
        min=0,
        max=10_000_000,
    )
    classes: str = hp(
        "",
        "Classification sets: train and validate on these classes only, comma-separated labels "
        "(0,1,2,3,4); they become labels 0..k-1 in the order given and the model's head gets k "
        "outputs (empty: every class). Transfer learning trains on some classes, then others",
    )
    augment: bool = hp(
        False,
        "Image sets: random shifts and small rotations of every training batch, and flips where "
        "the dataset's pictures allow them (never digits)",
    )
    reconstruction_loss: str = hp(
        "default",
        "Autoencoders, U-Nets and VAEs: the reconstruction loss; default is mse for autoencoders "
        "and U-Nets, bce (Bernoulli pixels) for VAEs; l1 is the absolute error",
        choices=RECONSTRUCTION_LOSSES,
    )
    freeze: str = hp(
        "",
        "Parts of the model not to train, by name, comma-separated (features, classifier, "
        "encoder.0): their parameters keep their values and get no optimizer state",
    )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that TrainConfig.from_dict turns back into an equal config."""
        values = config_to_dict(self)
        values["arch_config"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.arch_config.items()
        }
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A validated config from a dict (values may be strings, as from a CLI or a URL)."""
        values = dict(values)
        specs = {s.name: s for s in train_field_specs()}
        known = set(specs) | set(IDENTITY_FIELDS)
        unknown = sorted(set(values) - known)
        if unknown:
            names = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ConfigError(unknown[0], values[unknown[0]], "a TrainConfig field: " + names)
        typed: dict[str, Any] = {}
        for name, value in values.items():
            if name in specs:
                typed[name] = coerce(specs[name], value)
        arch_config = values.get("arch_config") or {}
        if not isinstance(arch_config, dict):
            raise ConfigError("arch_config", arch_config, "a dict of the architecture's fields")
        dataset = values.get("dataset") or None
        config = cls(
            arch=str(values.get("arch", "mlp")),
            dataset=None if dataset is None else str(dataset),
            # JSON turned tuples (layer widths) into lists; the architecture's configs hold tuples.
            arch_config={k: tuple(v) if isinstance(v, list) else v for k, v in arch_config.items()},
            **typed,
        )
        config.validate()
        # Typed values ("32" from a CLI becomes (32,)), so configs compare and save the same.
        typed_arch = spec_config(config)
        arch_values = {k: getattr(typed_arch, k) for k in config.arch_config}
        return dataclasses.replace(config, arch_config=arch_values)

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> TrainConfig:
        """A checkpoint's config, opened here: a device this machine lacks becomes auto (trained
        on a GPU server, opened on a laptop: the weights are the same on any device)."""
        values = dict(values)
        if not device_available(str(values.get("device", "auto"))):
            values["device"] = "auto"
        return cls.from_dict(values)

    def validate(self) -> None:
        """Raise ConfigError naming the field for a bad value, name or combination."""
        for spec in train_field_specs():
            check_value(spec, coerce(spec, getattr(self, spec.name)))
        try:
            spec = get_arch(self.arch)
        except UnknownNameError:
            raise ConfigError("arch", self.arch, "one of " + ", ".join(list_archs())) from None
        dataset = self.dataset or spec.default_dataset
        try:
            info = dataset_info(dataset)
        except UnknownNameError:
            raise ConfigError("dataset", dataset, "one of " + ", ".join(list_datasets())) from None
        arch_config = spec_config(self)
        check_compatible(spec, info)
        if self.classes:
            if spec.task not in CLASS_SUBSET_TASKS:
                raise ConfigError(
                    "classes", self.classes, f"empty for {self.arch}, a {spec.task} model",
                    "a subset of classes is for classifiers",
                )  # fmt: skip
            info = subset_info(info, parse_classes(self.classes, info))
        if self.reconstruction_loss != "default" and spec.task not in RECONSTRUCTION_TASKS:
            raise ConfigError(
                "reconstruction_loss",
                self.reconstruction_loss,
                f"default for {self.arch}, a {spec.task} model",
                "mse, bce and l1 choose the loss of autoencoders, U-Nets and VAEs",
            )
        if self.optimizer not in MOMENTUM_OPTIMIZERS and self.momentum != DEFAULT_MOMENTUM:
            raise ConfigError(
                "momentum",
                self.momentum,
                f"{DEFAULT_MOMENTUM:g} (the default) with optimizer {self.optimizer}",
                "momentum sets the update of " + ", ".join(MOMENTUM_OPTIMIZERS) + " only",
            )
        if spec.check is not None:
            spec.check(arch_config, info)
        choose_device(self.device)


def spec_config(config: TrainConfig) -> Any:
    """The architecture's validated config (ConfigError names the architecture's field)."""
    return build_config(config.arch, config.arch_config)


def train_field_specs() -> list[FieldSpec]:
    """The training hyperparameters of TrainConfig, for widgets (arch and dataset left out)."""
    return [s for s in field_specs(TrainConfig) if s.name not in IDENTITY_FIELDS]


# Training fields that only some values of another field use: field -> (that field, the values
# that use it). The Train form shows such a field only with one of those values: a momentum box
# beside adam would look like a setting that does something (optim.MOMENTUM_OPTIMIZERS).
USED_ONLY_WITH: dict[str, tuple[str, tuple[str, ...]]] = {
    "momentum": ("optimizer", MOMENTUM_OPTIMIZERS),
    "lr_step_epochs": ("lr_schedule", ("step",)),
    "lr_gamma": ("lr_schedule", ("step",)),
}


def unused_fields(values: Mapping[str, Any]) -> list[str]:
    """The training fields that settings `values` leave unused (momentum with adam, lr_gamma
    without the step schedule); a deciding field missing from `values` has its default."""
    defaults = {spec.name: spec.default for spec in train_field_specs()}
    return [
        name
        for name, (decider, users) in USED_ONLY_WITH.items()
        if values.get(decider, defaults[decider]) not in users
    ]


def train_defaults(arch: str) -> dict[str, Any]:
    """The training settings an architecture starts from: TrainConfig's, with its own on top."""
    return {**{s.name: s.default for s in train_field_specs()}, **get_arch(arch).train_defaults}
