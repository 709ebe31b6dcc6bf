"""Training as the course teaches it: Adadelta, learning-rate schedules, early stopping with the
best weights kept, a training subset, freezing parts, augmentation and per-layer statistics."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from deeparch.data import dataset_info, load_dataset
from deeparch.data.sources import stratified_subset
from deeparch.engine.augment import (
    FLIPPABLE_DATASETS,
    AugmentPolicy,
    ImageAugmenter,
    policy_for,
)
from deeparch.engine.callbacks import Callback, default_callbacks
from deeparch.engine.config import TrainConfig
from deeparch.engine.diagnostics import histogram, layer_statistics
from deeparch.engine.loop import Trainer, epoch_order
from deeparch.engine.metrics_log import MetricsLog
from deeparch.engine.optim import OPTIMIZERS, make_optimizer
from deeparch.engine.prepare import prepare
from deeparch.engine.schedule import LR_FLOOR, LR_SCHEDULES, scheduled_lr
from deeparch.engine.state import JobState
from deeparch.errors import ConfigError
from deeparch.models import create_model, get_arch, list_archs
from deeparch.models.parts import freeze_parts, top_level_parts

CONFIG = TrainConfig(
    arch="mlp", arch_config={"hidden_sizes": (16,)}, batch_size=500, epochs=2, snapshot_every=4
)  # 4,000 training images: 8 steps per epoch


class AlwaysGo:
    stop_reason = ""

    def between_steps(self, step):
        return True, 0.0


def train(config, extra=()):
    log = MetricsLog()
    trainer = Trainer(prepare(config), AlwaysGo(), [*default_callbacks(log), *extra])
    state, reason = trainer.run()
    return trainer, log, state, reason


# ---- Adadelta -----------------------------------------------------------------------------------


def test_adadelta_is_an_optimizer_and_keeps_its_two_running_averages():
    assert "adadelta" in OPTIMIZERS
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = make_optimizer("adadelta", [weight], lr=1.0)
    assert isinstance(optimizer, torch.optim.Adadelta)
    weight.grad = torch.ones(3)
    optimizer.step()
    assert set(optimizer.state[weight]) == {"step", "square_avg", "acc_delta"}
    # Zeiler (2012), eq. 14 with rho 0.9, eps 1e-6 on the first step: E[g^2] = 0.1 g^2 and
    # dx = -sqrt(eps) / sqrt(E[g^2] + eps) g.
    step = math.sqrt(1e-6) / math.sqrt(0.1 + 1e-6)
    assert torch.allclose(weight.detach(), torch.full((3,), 1.0 - step))


def test_adadelta_trains_and_its_loss_falls():
    config = dataclasses.replace(CONFIG, optimizer="adadelta", lr=1.0, epochs=3)
    trainer, log, state, _ = train(config)
    losses = [value for _, value in log.copy()["losses"]["loss"]]
    assert state is JobState.FINISHED
    assert np.mean(losses[-4:]) < np.mean(losses[:4])


# ---- learning-rate schedules --------------------------------------------------------------------


def test_step_schedule_cuts_the_rate_every_lr_step_epochs():
    rates = [
        scheduled_lr("step", 0.1, step, 40, 10, step_epochs=2, gamma=0.5) for step in range(40)
    ]
    assert rates[:20] == [0.1] * 20
    assert rates[20:] == [0.05] * 20


def test_cosine_schedule_matches_pytorch_cosine_annealing():
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=0.2)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=25)
    expected = []
    for _ in range(25):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    ours = [scheduled_lr("cosine", 0.2, step, 25, 5) for step in range(25)]
    assert np.allclose(ours, expected)
    assert scheduled_lr("cosine", 0.2, 25, 25, 5) == pytest.approx(0.0)


def test_a_scheduled_rate_never_goes_below_the_least_lr():
    config = dataclasses.replace(CONFIG, lr=1e-5, lr_schedule="step", lr_gamma=0.01, epochs=3)
    trainer, _, _, _ = train(config)
    assert trainer.current_lr() == LR_FLOOR == 1e-6


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_every_step_trains_at_the_scheduled_rate(schedule):
    config = dataclasses.replace(CONFIG, lr_schedule=schedule, lr_step_epochs=1, lr_gamma=0.5)

    class RateRecorder(Callback):
        def __init__(self):
            self.rates = []

        def on_train_start(self, trainer):
            original = trainer.task.train_step

            def train_step(batch):
                self.rates.append(trainer.current_lr())
                return original(batch)

            trainer.task.train_step = train_step

    recorder = RateRecorder()
    trainer, _, _, _ = train(config, [recorder])
    expected = [
        max(
            LR_FLOOR,
            scheduled_lr(
                schedule, 1e-3, step, trainer.total_steps, trainer.steps_per_epoch, 1, 0.5
            ),
        )
        for step in range(trainer.total_steps)
    ]
    assert np.allclose(recorder.rates, expected)


# ---- early stopping -----------------------------------------------------------------------------


class WeightsPerEpoch(Callback):
    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, trainer, metrics):
        self.weights[metrics["epoch"]] = {
            k: v.clone() for k, v in trainer.model.state_dict().items()
        }


def scripted_validation(trainer_losses):
    """A task.evaluate that reports val_loss from a script, one value per call."""
    values = iter(trainer_losses)
    return lambda x, y: {"val_loss": next(values), "val_accuracy": 0.5}


def test_early_stopping_stops_after_patience_and_keeps_the_best_weights():
    config = dataclasses.replace(CONFIG, epochs=10, early_stopping=2)
    prepared = prepare(config)
    prepared.task.evaluate = scripted_validation([1.0, 0.5, 0.7, 0.6, 0.9, 0.1])
    log, weights = MetricsLog(), WeightsPerEpoch()
    trainer = Trainer(prepared, AlwaysGo(), [*default_callbacks(log), weights])
    state, reason = trainer.run()
    assert state is JobState.FINISHED
    assert trainer.progress.epoch == 4  # best at epoch 2, no better in epochs 3 and 4
    assert "early stopping" in reason and "epoch 2" in reason
    final = trainer.progress.final_metrics
    assert (final["best_epoch"], final["best_val_loss"], final["val_loss"]) == (2, 0.5, 0.5)
    kept = trainer.model.state_dict()
    assert all(torch.equal(kept[k], weights.weights[2][k]) for k in kept)
    assert not all(torch.equal(kept[k], weights.weights[4][k]) for k in kept)
    last = log.latest_snapshot()
    assert last["step"] == trainer.progress.global_step
    assert (last["best_epoch"], last["best_weights_restored"]) == (2, True)


def test_early_stopping_at_the_end_of_all_epochs_also_keeps_the_best():
    config = dataclasses.replace(CONFIG, epochs=3, early_stopping=5)
    prepared = prepare(config)
    prepared.task.evaluate = scripted_validation([0.9, 0.3, 0.4])
    weights = WeightsPerEpoch()
    trainer = Trainer(prepared, AlwaysGo(), [*default_callbacks(MetricsLog()), weights])
    state, reason = trainer.run()
    assert (state, trainer.progress.epoch) == (JobState.FINISHED, 3)
    assert "early stopping" not in reason
    kept = trainer.model.state_dict()
    assert all(torch.equal(kept[k], weights.weights[2][k]) for k in kept)


def test_early_stopping_off_trains_every_epoch_and_keeps_the_last_weights():
    config = dataclasses.replace(CONFIG, epochs=3)
    prepared = prepare(config)
    prepared.task.evaluate = scripted_validation([0.9, 0.3, 0.4])
    weights = WeightsPerEpoch()
    trainer = Trainer(prepared, AlwaysGo(), [*default_callbacks(MetricsLog()), weights])
    trainer.run()
    kept = trainer.model.state_dict()
    assert all(torch.equal(kept[k], weights.weights[3][k]) for k in kept)
    assert "best_epoch" not in trainer.progress.final_metrics


# ---- a subset of the training set ---------------------------------------------------------------


def test_stratified_subset_keeps_each_class_share_and_depends_only_on_the_seed():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    chosen = stratified_subset(labels, 20, seed=3)
    assert len(chosen) == len(set(chosen.tolist())) == 20
    assert np.bincount(labels[chosen], minlength=4).tolist() == [10, 6, 3, 1]
    assert np.array_equal(chosen, stratified_subset(labels, 20, seed=3))
    assert not np.array_equal(chosen, stratified_subset(labels, 20, seed=4))


def test_largest_remainders_fill_the_count_exactly():
    labels = np.repeat(np.arange(3), [10, 10, 10])
    counts = np.bincount(labels[stratified_subset(labels, 10, seed=0)], minlength=3)
    assert counts.sum() == 10 and sorted(counts.tolist()) == [3, 3, 4]


def test_a_run_trains_on_the_subset_only():
    config = dataclasses.replace(CONFIG, train_subset=200, batch_size=50)
    prepared = prepare(config, dry_run=False)
    full = load_dataset("mnist")
    assert len(prepared.x_train) == 200
    index = stratified_subset(full.y_train.numpy(), 200, 0)
    assert torch.equal(prepared.x_train, full.x_train[index])
    assert torch.equal(prepared.x_val, full.x_val)  # validation stays whole
    assert np.bincount(prepared.y_train.numpy(), minlength=10).min() >= 15
    assert Trainer(prepared, AlwaysGo()).steps_per_epoch == 4


def test_a_subset_larger_than_the_training_set_names_the_field():
    with pytest.raises(ConfigError) as raised:
        prepare(dataclasses.replace(CONFIG, train_subset=4001), dry_run=False)
    assert raised.value.field == "train_subset" and "4,000" in str(raised.value)


# ---- freezing parts by name ---------------------------------------------------------------------


def freezable_archs():
    """Every registered architecture with two or more parts: freeze the first, train the rest."""
    names = []
    for name in list_archs():
        model, _ = create_model(name)
        if len(top_level_parts(model)) >= 2:
            names.append(name)
    return names


@pytest.mark.parametrize("arch", freezable_archs())
def test_freezing_a_part_by_name_leaves_it_out_of_gradients(arch):
    model, _ = create_model(arch)
    first = top_level_parts(model)[0]
    frozen = freeze_parts(model, first)
    part = dict(model.named_children())[first]
    assert frozen == sum(p.numel() for p in part.parameters())
    assert not any(p.requires_grad for p in part.parameters())
    assert any(p.requires_grad for p in model.parameters())


def test_frozen_parameters_do_not_change_and_get_no_optimizer_state():
    model, _ = create_model("mlp", {"hidden_sizes": (16,)})
    first = top_level_parts(model)[0]
    config = dataclasses.replace(CONFIG, freeze=first, weight_decay=0.1, optimizer="adamw")
    prepared = prepare(config)
    frozen = {
        name: p.detach().clone()
        for name, p in prepared.model.named_parameters()
        if name.startswith(first + ".")
    }
    trained = {
        name: p.detach().clone()
        for name, p in prepared.model.named_parameters()
        if not name.startswith(first + ".")
    }
    assert frozen and trained
    Trainer(prepared, AlwaysGo(), default_callbacks(MetricsLog())).run()
    now = dict(prepared.model.named_parameters())
    assert all(torch.equal(now[name], value) for name, value in frozen.items())
    assert all(not torch.equal(now[name], value) for name, value in trained.items())
    optimizer = prepared.task.optimizers["model"]
    in_groups = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not any(id(now[name]) in in_groups for name in frozen)
    assert not any(now[name] in optimizer.state for name in frozen)
    assert all(now[name] in optimizer.state for name in trained)


def test_an_unknown_part_names_freeze_and_lists_the_parts():
    model, _ = create_model("mlp")
    with pytest.raises(ConfigError) as raised:
        freeze_parts(model, "no_such_part")
    assert raised.value.field == "freeze"
    assert all(part in str(raised.value) for part in top_level_parts(model))


def test_freezing_everything_is_refused():
    model, _ = create_model("mlp")
    with pytest.raises(ConfigError) as raised:
        freeze_parts(model, ",".join(top_level_parts(model)))
    assert "every parameter" in str(raised.value)


# ---- augmentation -------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["mnist", "digits", "fashion_mnist", "cifar10"])
def test_augmentation_keeps_labels_and_shapes_and_moves_the_images(dataset):
    info = dataset_info(dataset)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((16, *info.input_shape), generator=generator)
    y = torch.arange(16) % info.num_classes
    augmenter = ImageAugmenter(policy_for(info), seed=0, device=torch.device("cpu"))
    moved, labels = augmenter((x, y), step=5)
    assert moved.shape == x.shape and moved.dtype == x.dtype
    assert labels is y
    assert not torch.equal(moved, x)
    again, _ = augmenter((x, y), step=5)
    assert torch.equal(moved, again)  # the same step, the same draws
    other, _ = augmenter((x, y), step=6)
    assert not torch.equal(moved, other)
    assert policy_for(info).flip == (dataset in FLIPPABLE_DATASETS)


def test_a_zero_move_is_the_identity_and_a_flip_mirrors():
    x = torch.rand(4, 3, 8, 8)
    still = ImageAugmenter(AugmentPolicy(0.0, 0.0, False), 0, torch.device("cpu"))
    assert torch.allclose(still.transform(x), x, atol=1e-6)
    flipping = ImageAugmenter(AugmentPolicy(0.0, 0.0, True), 0, torch.device("cpu"))
    out = flipping.transform(x)
    for image, result in zip(x, out, strict=True):
        assert torch.allclose(result, image, atol=1e-6) or torch.allclose(
            result, image.flip(-1), atol=1e-6
        )


def test_digits_are_never_flipped():
    assert not FLIPPABLE_DATASETS & {"mnist", "digits", "mnist_full", "kmnist"}


def test_a_run_with_augmentation_trains_on_moved_batches():
    config = dataclasses.replace(CONFIG, augment=True, max_steps=3)
    prepared = prepare(config)
    seen = []
    original = prepared.task.train_step
    prepared.task.train_step = lambda batch: seen.append(batch[0].clone()) or original(batch)
    Trainer(prepared, AlwaysGo()).run()
    order = epoch_order(0, 0, len(prepared.x_train))
    plain = prepared.x_train[order[:500]]
    assert seen[0].shape == plain.shape and not torch.equal(seen[0], plain)


# ---- per-layer statistics -----------------------------------------------------------------------


def test_histogram_counts_every_value_within_symmetric_edges():
    values = torch.tensor([-2.0, -1.0, 0.0, 0.5, 2.0])
    counts, edges = histogram(values, bins=4)
    assert counts.sum() == 5 and edges[0] == -2.0 and edges[-1] == 2.0
    assert np.array_equal(counts, np.histogram(values.numpy(), bins=edges)[0])


def test_layer_statistics_match_the_weights_and_gradients():
    model, _ = create_model("mlp", {"hidden_sizes": (8,)})
    stats = layer_statistics(model)
    assert np.isnan(stats["grad_norm"]).all()  # before any backward pass
    model(torch.rand(4, 1, 28, 28)).sum().backward()
    stats = layer_statistics(model)
    weights = [(n, p) for n, p in model.named_parameters() if p.dim() > 1]
    assert stats["names"] == [n for n, _ in weights]
    assert np.allclose(stats["weight_norm"], [float(p.detach().norm()) for _, p in weights])
    assert np.allclose(stats["grad_norm"], [float(p.grad.norm()) for _, p in weights])
    assert stats["weight_counts"].sum(axis=1).tolist() == [p.numel() for _, p in weights]


def test_every_snapshot_carries_the_layer_statistics():
    trainer, log, _, _ = train(dataclasses.replace(CONFIG, epochs=1))
    snapshots = log.copy()["snapshots"]
    assert len(snapshots) >= 2
    for snapshot in snapshots:
        layers = snapshot["layers"]
        assert len(layers["names"]) == layers["weight_counts"].shape[0] == 2
        assert np.isfinite(layers["grad_norm"]).all()


@pytest.mark.parametrize("arch", ["logistic_regression", "cnn"])
def test_layer_statistics_of_registered_models(arch):
    model, _ = create_model(arch)
    stats = layer_statistics(model)
    assert len(stats["names"]) == stats["weight_edges"].shape[0]
    assert get_arch(arch).task == "classify"


@pytest.mark.parametrize("arch", freezable_archs())
def test_the_layer_table_counts_a_frozen_part_as_not_trainable(arch):
    from deeparch.introspection.table import summarize

    model, _ = create_model(arch)
    first = top_level_parts(model)[0]
    part_size = sum(p.numel() for p in dict(model.named_children())[first].parameters())
    plain, frozen = summarize(arch), summarize(arch, freeze=first)
    assert frozen.total_params == plain.total_params == plain.trainable_params
    assert frozen.trainable_params == plain.total_params - part_size
    for row in frozen.rows:
        in_part = row.name == first or row.name.startswith(first + ".")
        assert row.trainable == (0 if in_part else row.params)


def test_a_checkpoint_of_a_frozen_adadelta_run_with_a_schedule_resumes(tmp_path):
    from deeparch.checkpoint import files as checkpoint
    from deeparch.engine.checkpointing import checkpoint_contents, restore_trainer

    config = dataclasses.replace(
        CONFIG,
        optimizer="adadelta",
        lr=1.0,
        freeze=top_level_parts(create_model("mlp", CONFIG.arch_config)[0])[0],
        lr_schedule="cosine",
        epochs=2,
        max_steps=5,
    )
    trainer, log, _, _ = train(config)
    tensors, meta = checkpoint_contents(trainer, log, JobState.STOPPED, "mnist")
    path = checkpoint.write_checkpoint(tmp_path / "run.safetensors", tensors, meta)
    longer = dataclasses.replace(config, max_steps=8)
    resumed = Trainer(prepare(longer), AlwaysGo(), default_callbacks(MetricsLog()))
    restore_trainer(resumed, MetricsLog(), *checkpoint.read_checkpoint(path))
    assert resumed.progress.global_step == 5
    before = {n: p.detach().clone() for n, p in resumed.model.named_parameters()}
    resumed.run()
    assert resumed.progress.global_step == 8
    optimizer = resumed.task.optimizers["model"]
    for name, param in resumed.model.named_parameters():
        assert torch.equal(param, before[name]) == (not param.requires_grad)
        assert (param in optimizer.state) == param.requires_grad
