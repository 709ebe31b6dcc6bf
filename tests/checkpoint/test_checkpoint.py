"""Checkpoints: round trip, atomic writes, exact resume, shape checks, and no unpickling ever."""

import dataclasses
import json
import os
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch

from deeparch.checkpoint import files as checkpoint
from deeparch.cli.main import main
from deeparch.engine import metrics_log
from deeparch.engine.config import TrainConfig
from deeparch.engine.evaluate import evaluate_checkpoint
from deeparch.engine.manager import JobManager
from deeparch.errors import ConfigError, DeeparchError
from deeparch.models import create_model

WAIT_S = 60

SMALL = TrainConfig(
    arch="mlp",
    arch_config={"hidden_sizes": (32,), "dropout": 0.2},
    batch_size=32,
    epochs=100,
    max_steps=20,
    snapshot_every=10,
)


# The smallest run that has weights, Adam's moments and a history: for the damaged-file tests.
TINY = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, max_steps=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models


@pytest.fixture(scope="module")
def tiny_job():
    return trained(TINY)


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
    with pytest.raises(DeeparchError) as raised:
        second.save_checkpoint(tmp_path)
    assert str(raised.value) == (
        f"cannot write the checkpoint {path}: disk unplugged during rename; "
        "choose another place to save it"
    )
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
    final = job.snapshot()["final_metrics"]
    assert metrics["val_loss"] == pytest.approx(final["val_loss"])
    assert metrics["val_accuracy"] == pytest.approx(final["val_accuracy"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only machine's case")
def test_a_checkpoint_trained_on_a_gpu_evaluates_and_loads_on_the_cpu(tmp_path):
    job = trained(SMALL)
    tensors, meta = checkpoint.read_checkpoint(job.save_checkpoint(tmp_path / "cpu"))
    meta["train_config"]["device"] = "cuda"  # as a GPU server writes it
    path = checkpoint.write_checkpoint(tmp_path / "gpu.safetensors", tensors, meta)
    metrics = evaluate_checkpoint(path)
    final = job.snapshot()["final_metrics"]
    assert metrics["val_accuracy"] == pytest.approx(final["val_accuracy"])
    loaded = JobManager(max_running=1, heartbeat_timeout=0).load_checkpoint(path)
    assert loaded.snapshot()["device"] == "cpu"
    for name, value in job.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name


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


# ---- damaged, edited and unwritable checkpoints -------------------------------------------------


def every_loader():
    """Each way a student opens a checkpoint: read, load to show, evaluate, resume."""
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    return (
        checkpoint.read_checkpoint,
        manager.load_checkpoint,
        evaluate_checkpoint,
        lambda p: manager.submit(TINY, resume=p),
    )


def assert_refused(path: Path, message: str) -> None:
    for load in every_loader():
        with pytest.raises(DeeparchError) as raised:
            load(path)
        assert str(raised.value) == message


def rewrite_metadata(path: Path, text: str) -> None:
    """The checkpoint's tensors again, under other header metadata and without its .json."""
    tensors = safetensors.torch.load_file(str(path))
    safetensors.torch.save_file(tensors, str(path), {checkpoint.METADATA_KEY: text})
    path.with_suffix(".json").unlink()


CUT_OFF = "(the file was cut off?); save or download it again"


@pytest.mark.parametrize(
    ("keep", "problem"),
    [
        (lambda size, header: 0, "it is empty"),
        (lambda size, header: 4, "it is only 4 bytes long"),
        (lambda size, header: 8 + header - 3, "its header ends early"),
        (lambda size, header: size - 1, "its tensor data ends early"),
        (lambda size, header: 8 + header + 5, "its tensor data ends early"),
    ],
    ids=["empty", "4 bytes", "in the header", "at the last byte", "after the header"],
)
def test_a_cut_off_checkpoint_is_called_damaged(tmp_path, tiny_job, keep, problem, capsys):
    path = tiny_job.save_checkpoint(tmp_path / "mlp.safetensors")
    data = path.read_bytes()
    header_length = int.from_bytes(data[:8], "little")
    path.write_bytes(data[: keep(len(data), header_length)])
    (tmp_path / "mlp.json").unlink()
    message = f"{path} is damaged: {problem} {CUT_OFF}"
    assert_refused(path, message)
    assert main(["evaluate", str(path)]) == 2
    assert capsys.readouterr().err == f"deeparch: error: {message}\n"


def test_a_header_that_is_not_json_is_called_damaged(tmp_path, tiny_job):
    path = tiny_job.save_checkpoint(tmp_path / "mlp.safetensors")
    data = bytearray(path.read_bytes())
    data[9] = ord("#")  # right after the header's opening brace
    path.write_bytes(bytes(data))
    assert_refused(
        path,
        # the detail is safetensors' own (its JSON parser's words and position)
        f"{path} is damaged: its header is not valid JSON (key must be a string at line 1 "
        "column 2); save or download it again",
    )


@pytest.mark.parametrize(
    "data",
    [
        # a header length past the format's 100 MB, then a header that starts like JSON
        (checkpoint.MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b'{"a": 1}',
        (2**63).to_bytes(8, "little") + b"{}",
        b"weights, one a line: 0.1 0.2 0.3\n",  # text: its first 8 bytes are a huge length
    ],
    ids=["header over 100 MB", "header of 2**63 bytes", "a text file"],
)
def test_a_file_whose_first_bytes_are_no_safetensors_header_is_refused(tmp_path, data, capsys):
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    message = (
        f"{path} is not a safetensors file; deeparch loads only .safetensors checkpoints and "
        "never unpickles a file, because unpickling runs any code stored in it. Re-save the "
        "weights with safetensors.torch.save_file, or train with deeparch to get a checkpoint."
    )
    assert_refused(path, message)
    assert main(["evaluate", str(path)]) == 2
    assert capsys.readouterr().err == f"deeparch: error: {message}\n"


def edited(meta: dict, where: str, value) -> dict:
    """meta with the field at a dotted path (`progress.step`) set to value (removed for ...)."""
    *parents, name = where.split(".")
    inner = meta
    for parent in parents:
        inner = inner[parent]
    if value is ...:
        del inner[name]
    else:
        inner[name] = value
    return meta


@pytest.mark.parametrize(
    ("where", "value", "problem"),
    [
        (
            "train_config",
            ...,
            "has no train_config in its metadata: it was not written by deeparch",
        ),
        ("history", ..., "has no history in its metadata: it was not written by deeparch"),
        (
            "progress.step",
            "x",
            "is damaged: progress.step in its metadata is 'x', not a whole number from 0 to 2^53",
        ),
        (
            "progress.step",
            -1,
            "is damaged: progress.step in its metadata is -1, not a whole number from 0 to 2^53",
        ),
        ("progress.epoch", ..., "is damaged: its metadata has no progress.epoch"),
        (
            "progress.epoch_loss_sum",
            True,
            "is damaged: progress.epoch_loss_sum in its metadata is True, not a number",
        ),
        ("train_config", [1], "is damaged: train_config in its metadata is [1], not a JSON object"),
        (
            "history.losses.loss",
            [[0, 2.3], [1]],
            "is damaged: history.losses.loss[1] in its metadata is [1], not a [step, value] pair",
        ),
        (
            "history.epoch_metrics",
            {},
            "is damaged: history.epoch_metrics in its metadata is {}, not a list",
        ),
        (
            "final_metrics.val_loss",
            "low",
            "is damaged: final_metrics.val_loss in its metadata is 'low', not a number or null",
        ),
        (
            "optimizer.model.scalars",
            {"first": {}},
            "is damaged: optimizer.model.scalars in its metadata has the key 'first', "
            "not a parameter index",
        ),
        (
            "optimizer.model.param_groups",
            [{"params": [0, 1, 2, 3], "lr": "fast"}],
            "is damaged: optimizer.model.param_groups[0].lr in its metadata is 'fast', not a "
            "finite number, true, false, null or a list of numbers",
        ),
    ],
)
def test_edited_metadata_is_refused_with_the_field_named(tmp_path, tiny_job, where, value, problem):
    path = tiny_job.save_checkpoint(tmp_path / "mlp.safetensors")
    _, meta = checkpoint.read_checkpoint(path)
    rewrite_metadata(path, json.dumps(edited(meta, where, value)))
    with pytest.raises(DeeparchError) as raised:
        checkpoint.read_checkpoint(path)
    assert str(raised.value) == f"{path} {problem}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "{bad",
            "is damaged: its deeparch metadata is not valid JSON (Expecting property name "
            "enclosed in double quotes at character 1); save or download it again",
        ),
        ("[1]", "has metadata that is a list, not a JSON object: it was not written by deeparch"),
        ("{}", "has no train_config in its metadata: it was not written by deeparch"),
    ],
)
def test_metadata_that_is_not_deeparch_json_is_refused_by_every_loader(
    tmp_path, tiny_job, text, problem
):
    path = tiny_job.save_checkpoint(tmp_path / "mlp.safetensors")
    rewrite_metadata(path, text)
    assert_refused(path, f"{path} {problem}")


def test_a_broken_json_description_names_the_json_file(tmp_path, tiny_job):
    path = tiny_job.save_checkpoint(tmp_path / "mlp.safetensors")
    tensors = safetensors.torch.load_file(str(path))
    safetensors.torch.save_file(tensors, str(path))  # no metadata: the .json is read instead
    (tmp_path / "mlp.json").write_text('{"arch": "mlp",')
    with pytest.raises(DeeparchError) as raised:
        checkpoint.read_checkpoint(path)
    assert str(raised.value) == (
        f"{tmp_path / 'mlp.json'} is damaged: its deeparch metadata is not valid JSON (Expecting "
        "property name enclosed in double quotes at character 15); save or download it again"
    )


def test_a_train_config_deeparch_cannot_use_names_the_file(tmp_path, tiny_job):
    path = tiny_job.save_checkpoint(tmp_path / "mlp.safetensors")
    _, meta = checkpoint.read_checkpoint(path)
    rewrite_metadata(path, json.dumps(edited(meta, "train_config.lr", "fast")))
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    for load in (manager.load_checkpoint, evaluate_checkpoint):
        with pytest.raises(DeeparchError) as raised:
            load(path)
        assert str(raised.value) == (
            f"{path} has a train_config deeparch cannot use: lr='fast' is not allowed: "
            "a number from 1e-06 to 10"
        )


@pytest.mark.parametrize(
    ("key", "damaged", "expected"),
    [
        ("optimizer/model/0/exp_avg", torch.zeros(3), "(8, 784), like parameter layers.fc1.weight"),
        ("optimizer/model/3/exp_avg_sq", torch.zeros(10, 1), "(10,), like parameter output.bias"),
    ],
)
def test_optimizer_state_of_the_wrong_shape_is_refused(tmp_path, tiny_job, key, damaged, expected):
    path = tiny_job.save_checkpoint(tmp_path / "mlp.safetensors")
    tensors, meta = checkpoint.read_checkpoint(path)
    assert key in tensors
    tensors[key] = damaged
    checkpoint.write_checkpoint(path, tensors, meta)
    message = (
        f"the checkpoint's optimizer tensor {key!r} has shape {tuple(damaged.shape)} but should "
        f"have shape {expected}; the optimizer state was edited or damaged"
    )
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    for load in (manager.load_checkpoint, lambda p: manager.submit(TINY, resume=p)):
        with pytest.raises(DeeparchError) as raised:
            load(path)
        assert str(raised.value) == message
    evaluate_checkpoint(path)  # the weights are fine: evaluating needs no optimizer state


@pytest.mark.parametrize(
    ("key", "damaged", "problem"),
    [
        (
            "optimizer/model/1/step",
            torch.zeros(2),
            "its tensor 'optimizer/model/1/step' is of dtype float32 and shape (2,), not a "
            "single number",
        ),
        (
            "optimizer/model/9/exp_avg",
            torch.zeros(8),
            "its tensor 'optimizer/model/9/exp_avg' belongs to parameter 9, but optimizer "
            "'model' has 4 parameters",
        ),
    ],
)
def test_optimizer_state_that_fits_no_parameter_is_refused_on_reading(
    tmp_path, tiny_job, key, damaged, problem
):
    path = tiny_job.save_checkpoint(tmp_path / "mlp.safetensors")
    tensors, meta = checkpoint.read_checkpoint(path)
    tensors[key] = damaged
    checkpoint.write_checkpoint(path, tensors, meta)
    assert_refused(path, f"{path} is damaged: {problem}; save or download it again")


def test_thinning_keeps_the_first_and_last_point_evenly_spaced():
    assert metrics_log.thin_evenly(list(range(10)), 4) == [0, 3, 6, 9]
    assert metrics_log.thin_evenly(list(range(5)), 5) == [0, 1, 2, 3, 4]
    assert metrics_log.thin_evenly(list(range(5)), 9) == [0, 1, 2, 3, 4]
    thinned = metrics_log.thin_evenly(list(range(1001)), 11)
    assert thinned == list(range(0, 1001, 100))


def test_a_long_history_is_saved_thinned_and_fits_in_the_header():
    log = metrics_log.MetricsLog()
    cap = metrics_log.MAX_SAVED_POINTS
    # long numbers: steps near TrainConfig's max_steps, losses with every digit
    points = [[step, 1.2345678901234567e-05] for step in range(10_000_000, 10_000_000 + 2 * cap)]
    log.restore({"losses": {"loss": points}, "epoch_metrics": []})
    log.add_losses(10_000_000 + 2 * cap, {"loss": 1.2345678901234567e-05})
    saved = log.history()["losses"]["loss"]
    assert len(saved) == cap
    assert saved[0][0] == 10_000_000 and saved[-1][0] == 10_000_000 + 2 * cap
    assert all(b[0] - a[0] in (2, 3) for a, b in zip(saved, saved[1:]))
    assert len(log.copy()["losses"]["loss"]) == 2 * cap + 1  # the live charts keep every point
    # even a task with ten loss terms saved at the cap stays far below the header limit
    assert 10 * len(json.dumps(saved)) < checkpoint.MAX_HEADER_BYTES / 2


def test_a_long_run_saves_and_resumes_with_a_thinned_history(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics_log, "MAX_SAVED_POINTS", 5)
    job = trained(dataclasses.replace(TINY, max_steps=12))
    every = job.snapshot()["losses"]["loss"]
    assert len(every) == 12
    path = job.save_checkpoint(tmp_path)
    _, meta = checkpoint.read_checkpoint(path)
    assert meta["history"]["losses"]["loss"] == [every[i] for i in (0, 3, 6, 8, 11)]
    resumed = trained(dataclasses.replace(TINY, max_steps=14), resume=path)
    losses = resumed.snapshot()["losses"]["loss"]
    assert [p[0] for p in losses] == [1, 4, 7, 9, 12, 13, 14]


def test_writing_under_a_file_names_the_path_and_the_reason(tmp_path, tiny_job):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    target = blocker / "runs" / "mlp.safetensors"
    with pytest.raises(DeeparchError) as raised:
        tiny_job.save_checkpoint(target)
    assert str(raised.value) == (
        f"cannot write the checkpoint {target}: {blocker} is a file, not a folder; "
        "choose another place to save it"
    )
    assert blocker.read_text() == "a file, not a folder"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("where", ["/proc/deeparch-test/mlp.safetensors", "/proc/mlp.safetensors"])
def test_writing_into_proc_names_the_path_and_the_reason(tiny_job, where):
    target = Path(where)
    with pytest.raises(DeeparchError) as raised:
        tiny_job.save_checkpoint(target)
    assert str(raised.value) == (
        f"cannot write the checkpoint {target}: No such file or directory; "
        "choose another place to save it"
    )
