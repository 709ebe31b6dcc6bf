"""Checkpoints: round trip, atomic writes, exact resume, shape checks, and no unpickling ever."""

import dataclasses
import json
import os
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch

from deeparch import checkpoint
from deeparch.errors import ConfigError, DeeparchError
from deeparch.models import create_model
from deeparch.training import JobManager, TrainConfig, evaluate_checkpoint

WAIT_S = 60

SMALL = TrainConfig(
    arch="mlp",
    arch_config={"hidden_sizes": (32,), "dropout": 0.2},
    batch_size=32,
    epochs=100,
    max_steps=20,
    snapshot_every=10,
)


def trained(config: TrainConfig, **kwargs):
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(config, **kwargs)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    return job


def test_round_trip_keeps_every_tensor_and_the_description(tmp_path):
    job = trained(SMALL)
    path = job.save_checkpoint(tmp_path)
    assert path == tmp_path / "mlp-mnist.safetensors"
    described = json.loads((tmp_path / "mlp-mnist.json").read_text())
    assert described["arch"] == "mlp" and described["dataset"] == "mnist"
    assert described["arch_config"] == {"hidden_sizes": [32], "dropout": 0.2}
    assert described["train_config"] == SMALL.to_dict()
    assert set(described["library_versions"]) >= {"torch", "safetensors", "deeparch"}
    assert described["progress"]["step"] == 20
    assert len(described["history"]["losses"]["loss"]) == 20

    loaded = JobManager(max_running=1, heartbeat_timeout=0).load_checkpoint(path)
    assert loaded.state == "finished" and loaded.config == SMALL
    original, restored = job.model.state_dict(), loaded.model.state_dict()
    assert list(original) == list(restored)
    for name in original:
        assert torch.equal(original[name], restored[name]), name
    snap = loaded.snapshot()
    assert snap["step"] == 20 and snap["losses"] == job.snapshot()["losses"]
    assert snap["snapshots"][-1]["confusion"].shape == (10, 10)
    # the optimizer state round-trips too (Adam's moments and step counts)
    saved = job.task.optimizers["model"].state_dict()["state"]
    again = loaded.task.optimizers["model"].state_dict()["state"]
    assert saved.keys() == again.keys()
    for index in saved:
        for key in saved[index]:
            assert torch.equal(
                torch.as_tensor(saved[index][key]), torch.as_tensor(again[index][key])
            )


def test_the_weights_file_alone_is_a_complete_checkpoint(tmp_path):
    path = trained(SMALL).save_checkpoint(tmp_path / "run.safetensors")
    (tmp_path / "run.json").unlink()  # the description also lives in the safetensors header
    tensors, meta = checkpoint.read_checkpoint(path)
    assert meta["arch"] == "mlp" and "layers.fc1.weight" in tensors


def test_a_crash_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    first = trained(SMALL)
    path = first.save_checkpoint(tmp_path)
    before = safetensors.torch.load_file(str(path))
    second = trained(dataclasses.replace(SMALL, seed=1))

    def crash(source, target):
        raise OSError("disk unplugged during rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        second.save_checkpoint(tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp-mnist.json", "mlp-mnist.safetensors"]
    tensors, meta = checkpoint.read_checkpoint(path)
    assert meta["train_config"]["seed"] == 0
    assert before.keys() == tensors.keys()
    assert all(torch.equal(before[k], tensors[k]) for k in before)


def test_resume_gives_the_same_weights_as_an_unbroken_run(tmp_path):
    straight = trained(dataclasses.replace(SMALL, max_steps=100))
    half = trained(dataclasses.replace(SMALL, max_steps=50))
    path = half.save_checkpoint(tmp_path)
    resumed = trained(dataclasses.replace(SMALL, max_steps=100), resume=path)
    assert resumed.snapshot()["step"] == 100
    expected, got = straight.model.state_dict(), resumed.model.state_dict()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name  # bitwise, dropout included
    assert resumed.snapshot()["losses"] == straight.snapshot()["losses"]
    assert resumed.snapshot()["epoch_metrics"] == straight.snapshot()["epoch_metrics"]


def test_resume_refuses_another_architecture(tmp_path):
    path = trained(SMALL).save_checkpoint(tmp_path)
    other = TrainConfig(arch="softmax_regression", max_steps=5)
    with pytest.raises(ConfigError) as raised:
        JobManager(max_running=1, heartbeat_timeout=0).submit(other, resume=path)
    assert raised.value.field == "arch"


def test_a_shape_mismatch_names_the_tensor_and_both_shapes(tmp_path):
    path = trained(SMALL).save_checkpoint(tmp_path)
    tensors, _ = checkpoint.read_checkpoint(path)
    state, _ = checkpoint.split_tensors(tensors)
    wider, _ = create_model("mlp", {"hidden_sizes": (64,)})
    with pytest.raises(DeeparchError) as raised:
        checkpoint.load_model_state(wider, state, "mlp")
    message = str(raised.value)
    assert "'layers.fc1.weight'" in message
    assert "(32, 784)" in message and "(64, 784)" in message


def test_missing_tensors_are_named(tmp_path):
    model, _ = create_model("mlp", {"hidden_sizes": (32,)})
    state = {k: v for k, v in model.state_dict().items() if k != "output.bias"}
    with pytest.raises(DeeparchError, match="missing output.bias"):
        checkpoint.load_model_state(model, state, "mlp")


class _CreatesMarker:
    """Unpickling this object would create a file: proof that code in a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickled_file_is_rejected_and_nothing_in_it_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    evil = tmp_path / "weights.pt"
    payload = {"layers.fc1.weight": _CreatesMarker(marker)}
    if writer == "pickle":
        evil.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, evil)
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    for load in (
        checkpoint.read_checkpoint,
        manager.load_checkpoint,
        evaluate_checkpoint,
        lambda p: manager.submit(SMALL, resume=p),
    ):
        with pytest.raises(DeeparchError, match="pickled PyTorch file"):
            load(evil)
    # the same bytes under a .safetensors name are refused as well
    disguised = tmp_path / "weights.safetensors"
    disguised.write_bytes(evil.read_bytes())
    with pytest.raises(DeeparchError, match="never unpickles"):
        checkpoint.read_checkpoint(disguised)
    assert not marker.exists()


def test_evaluate_checkpoint_reports_validation_metrics(tmp_path):
    job = trained(SMALL)
    metrics = evaluate_checkpoint(job.save_checkpoint(tmp_path))
    assert metrics["val_samples"] == 1000
    assert metrics["val_loss"] == pytest.approx(job.final_metrics["val_loss"])
    assert metrics["val_accuracy"] == pytest.approx(job.final_metrics["val_accuracy"])


def test_resume_is_exact_for_two_optimizers_and_noise(tmp_path):
    # A conditional GAN: generator and discriminator optimizers, latent noise every step.
    config = TrainConfig(arch="cgan", batch_size=16, epochs=100, max_steps=6, snapshot_every=4)
    straight = trained(config)
    half = trained(dataclasses.replace(config, max_steps=3))
    resumed = trained(config, resume=half.save_checkpoint(tmp_path))
    expected, got = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    assert resumed.snapshot()["losses"] == straight.snapshot()["losses"]
    assert set(resumed.snapshot()["losses"]) == {"loss", "d_loss", "g_loss", "d_x", "d_g_z"}
