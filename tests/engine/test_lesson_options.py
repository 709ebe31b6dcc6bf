"""Engine options the lessons need, each checked against an independent computation: SGD's
momentum (0: plain SGD), training on a subset of a dataset's classes, and the rnn's batch_first
and recurrent initialisation scale."""

import dataclasses

import pytest
import torch

from deeparch.checkpoint.optimizer import CheckpointMismatchError
from deeparch.cli.main import main
from deeparch.data import dataset_info, load_dataset
from deeparch.engine.checkpointing import WeightsFrom
from deeparch.engine.config import TrainConfig
from deeparch.engine.diagnostics import NEAR_ZERO_WEIGHT, layer_statistics
from deeparch.engine.manager import JobManager
from deeparch.engine.optim import make_optimizer
from deeparch.engine.prepare import prepare
from deeparch.errors import ConfigError
from deeparch.models import create_model, get_arch
from deeparch.randomness import borrowed_global_generator

SGD = TrainConfig(
    arch="softmax_regression", dataset="digits", optimizer="sgd", lr=0.1, batch_size=16,
    max_steps=2,
)  # fmt: skip


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_sgd_gets_the_configured_momentum(momentum):
    config = TrainConfig.from_dict({**SGD.to_dict(), "momentum": str(momentum)})
    optimizers = prepare(config, dry_run=False).task.optimizers
    groups = [group for optimizer in optimizers.values() for group in optimizer.param_groups]
    assert groups and all(group["momentum"] == momentum for group in groups)


def test_plain_sgd_steps_by_the_gradient_alone():
    # Two steps of plain SGD: w2 = w0 - lr g0 - lr g1 (momentum would add 0.9 lr g0 more).
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = make_optimizer("sgd", [weight], lr=0.1, momentum=0.0)
    gradients = []
    for _ in range(2):
        optimizer.zero_grad()
        (weight**2).sum().backward()
        gradients.append(weight.grad.clone())
        optimizer.step()
    expected = torch.tensor([1.0, -2.0]) - 0.1 * (gradients[0] + gradients[1])
    assert torch.allclose(weight.detach(), expected)


def test_momentum_is_refused_where_it_does_nothing():
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_dict({**SGD.to_dict(), "optimizer": "adam", "momentum": 0.0})
    assert error.value.field == "momentum" and "sgd" in str(error.value)
    with pytest.raises(ConfigError) as error:
        dataclasses.replace(SGD, momentum=1.5).validate()
    assert error.value.field == "momentum"


def seeded(arch, overrides, dataset="mnist_rows"):
    with borrowed_global_generator(0):
        return create_model(arch, overrides, dataset_info(dataset))[0]


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_batch_first_false_reads_the_batch_as_time(arch):
    wrong = seeded(arch, {"hidden_size": 8, "batch_first": False})
    right = seeded(arch, {"hidden_size": 8})
    assert all(torch.equal(a, b) for a, b in zip(wrong.parameters(), right.parameters()))
    x = torch.randn(5, 28, 28)  # (batch, time, feature), as the data comes
    with torch.no_grad():
        # The same weights reading the transposed tensor: time and batch swapped.
        expected = right.hidden_states(x.transpose(0, 1)).transpose(0, 1)
        got = wrong.hidden_states(x)
        assert wrong(x).shape == (5, 10)  # runs without an error: the mistake is silent
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, right.hidden_states(x), atol=1e-3)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_recurrent_init_scale_sets_every_gates_singular_values(arch):
    model = seeded(arch, {"hidden_size": 8, "num_layers": 2, "recurrent_init_scale": 2.5})
    blocks = [block for name, weight in model.rnn.named_parameters() if name.startswith("weight_hh")
              for block in weight.detach().split(8)]  # fmt: skip
    assert len(blocks) == 2 * {"rnn": 1, "lstm": 4, "gru": 3}[arch]
    for block in blocks:
        assert torch.allclose(torch.linalg.svdvals(block), torch.full((8,), 2.5), atol=1e-4)
    default = seeded(arch, {"hidden_size": 8, "num_layers": 2})
    assert torch.equal(
        default.rnn.weight_hh_l0, seeded(arch, {"hidden_size": 8, "num_layers": 2,
                                                "recurrent_init_scale": 0.0}).rnn.weight_hh_l0
    )  # fmt: skip
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_dict({"arch": arch, "arch_config": {"recurrent_init_scale": -1}})
    assert error.value.field == "recurrent_init_scale"


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_keep_gate_bias_opens_the_gate_that_keeps_the_state(arch):
    model = seeded(arch, {"hidden_size": 8, "num_layers": 2, "bidirectional": True,
                          "keep_gate_bias": 4.0}, dataset="first_sign")  # fmt: skip
    default = seeded(arch, {"hidden_size": 8, "num_layers": 2, "bidirectional": True},
                     dataset="first_sign")  # fmt: skip
    for name, bias in model.rnn.named_parameters():
        if not name.startswith("bias"):
            assert torch.equal(bias, dict(default.rnn.named_parameters())[name])
            continue
        keep, written = bias[8:16], bias[:8]  # gates (i, f, g, o) and (r, z, n): f and z
        summed_keep = 4.0 if name.startswith("bias_ih") else 0.0
        assert torch.equal(keep, torch.full((8,), summed_keep))
        if arch == "lstm":
            assert torch.equal(written, torch.full((8,), -summed_keep))
    # The independent check: one GRU step from a state h with zero input keeps sigmoid(4) of h
    # plus 1 - sigmoid(4) of the candidate (PyTorch's h' = (1 - z) n + z h).
    gru = seeded("gru", {"hidden_size": 8, "keep_gate_bias": 4.0}, dataset="first_sign").rnn
    h = torch.randn(1, 1, 8, generator=torch.Generator().manual_seed(0))
    w, b_ih, b_hh = gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
    with torch.no_grad():
        _, stepped = gru(torch.zeros(1, 1, 2), h)
        state = h[0, 0]
        z = torch.sigmoid(w[8:16] @ state + 4.0)
        r = torch.sigmoid(w[:8] @ state + b_ih[:8] + b_hh[:8])
        n = torch.tanh(b_ih[16:] + r * (w[16:] @ state + b_hh[16:]))
    assert torch.allclose(stepped[0, 0], (1 - z) * n + z * h[0, 0], atol=1e-6)
    assert "keep_gate_bias" not in {f.name for f in dataclasses.fields(get_arch("rnn").config_cls)}


def test_layer_statistics_count_the_weights_near_zero():
    layer = torch.nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 5e-5, -9e-5, 0.5], [1e-4, -2e-4, 0.1, -1.0]]))
    stats = layer_statistics(layer)
    assert NEAR_ZERO_WEIGHT == 1e-4
    assert stats["names"] == ["weight"] and stats["weight_near_zero"].tolist() == [3 / 8]


FIRST_FIVE = {"arch": "softmax_regression", "dataset": "mnist", "max_steps": 2}


def test_classes_narrow_the_data_and_the_head_in_the_order_given():
    data = load_dataset("mnist")
    prepared = prepare(TrainConfig.from_dict({**FIRST_FIVE, "classes": "7, 2,5"}), dry_run=False)
    splits = [
        (prepared.x_train, prepared.y_train, data.x_train, data.y_train),
        (prepared.x_val, prepared.y_val, data.x_val, data.y_val),
    ]
    for x, y, x_all, y_all in splits:
        chosen = (y_all == 7) | (y_all == 2) | (y_all == 5)
        assert torch.equal(x, x_all[chosen])
        # 7 -> 0, 2 -> 1, 5 -> 2: an independent relabelling.
        assert torch.equal(y, torch.tensor([[7, 2, 5].index(int(v)) for v in y_all[chosen]]))
    assert prepared.info.num_classes == 3 and prepared.info.class_names == ("7", "2", "5")
    assert prepared.model(prepared.x_val[:2]).shape == (2, 3)
    assert len(load_dataset("mnist").y_train) == len(data.y_train)  # the shared copy stays whole


def test_classes_with_a_subset_take_that_many_of_the_chosen_classes():
    config = TrainConfig.from_dict({**FIRST_FIVE, "classes": "5,6,7,8,9", "train_subset": 50})
    prepared = prepare(config, dry_run=False)
    assert torch.bincount(prepared.y_train).tolist() == [10] * 5


@pytest.mark.parametrize(
    "overrides, allowed",
    [
        ({"classes": "0,10"}, "mnist has no class 10"),
        ({"classes": "3"}, "at least two"),
        ({"classes": "1,1,2"}, "each once"),
        ({"classes": "a,b"}, "0 to 9"),
        ({"arch": "autoencoder", "classes": "0,1"}, "for classifiers"),
    ],
)
def test_bad_classes_name_the_field_and_what_is_allowed(overrides, allowed):
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_dict({**FIRST_FIVE, **overrides})
    assert error.value.field == "classes" and allowed in str(error.value)


def test_weights_from_takes_the_named_parts_and_leaves_the_rest_fresh(tmp_path):
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    first = TrainConfig.from_dict(
        {
            "arch": "cnn",
            "dataset": "mnist",
            "arch_config": {"dense_width": 16},
            "classes": "0,1,2",
            "max_steps": 3,
            "batch_size": 16,
            "seed": 1,
        }  # fmt: skip
    )
    pretrained = manager.submit(first)
    assert pretrained.wait(120) and pretrained.state == "finished", pretrained.reason
    path = pretrained.save_checkpoint(tmp_path / "first")
    second = dataclasses.replace(first, classes="3,4,5", seed=2, max_steps=1, freeze="features")
    held_job = manager.submit(second, weights_from=WeightsFrom(path, "features,classifier.fc1"))
    fresh = prepare(second, dry_run=False).model  # what seed 2 alone initialises
    assert held_job.wait(120) and held_job.state == "finished", held_job.reason
    old, new = pretrained.model_copy().state_dict(), held_job.model_copy().state_dict()
    for key in new:
        if key.startswith("features."):  # taken and frozen: the checkpoint's exactly
            assert torch.equal(new[key], old[key]), key
    # fc1 was taken, then trained one step; the output layer started from seed 2, a new head.
    assert not torch.equal(new["classifier.output.weight"], old["classifier.output.weight"])
    assert fresh.classifier.output.weight.shape == old["classifier.output.weight"].shape
    with pytest.raises(ConfigError) as error:
        manager.submit(second, weights_from=WeightsFrom(path, "nosuch"))
    assert error.value.field == "weights_from" and "features" in str(error.value)
    with pytest.raises(ConfigError) as error:
        manager.submit(second, resume=path, weights_from=WeightsFrom(path, "features"))
    assert error.value.field == "weights_from"
    wider = dataclasses.replace(second, arch_config={"dense_width": 32})
    with pytest.raises(CheckpointMismatchError, match="classifier.fc1.weight"):
        manager.submit(wider, weights_from=WeightsFrom(path, "classifier.fc1"))


def test_the_cli_trains_on_classes_and_starts_from_a_checkpoints_parts(tmp_path, capsys):
    common = ["train", "softmax_regression", "--dataset", "mnist", "--max-steps", "2"]
    assert main([*common, "--classes", "0,1", "--momentum", "0", "--optimizer", "sgd",
                 "--out", str(tmp_path / "first")]) == 0  # fmt: skip
    path = tmp_path / "first" / "softmax_regression-mnist.safetensors"
    assert main([*common, "--classes", "2,3", "--weights-from", f"{path}:output",
                 "--out", str(tmp_path / "second")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main([*common, "--weights-from", str(path)]) == 2
    assert "CHECKPOINT:PARTS" in capsys.readouterr().err
