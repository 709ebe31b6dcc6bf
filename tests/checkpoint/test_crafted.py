"""Crafted checkpoints: optimizer state, counters, dtypes and paths that PyTorch or the loop would
believe are refused with a message naming the file and the problem, before anything runs on them."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

from deeparch.checkpoint import files as checkpoint
from deeparch.cli.main import main
from deeparch.engine.config import TrainConfig
from deeparch.engine.evaluate import evaluate_checkpoint
from deeparch.engine.manager import JobManager
from deeparch.errors import ConfigError, DeeparchError
from tests.engine.jobs import held, in_training

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60
TINY = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, max_steps=5)
EDITED = "its description was edited or damaged"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A checkpoint of 5 steps of a small MLP with Adam: weights, moments, steps, history."""
    job = JobManager(max_running=1, heartbeat_timeout=0).submit(TINY)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    return job.save_checkpoint(tmp_path_factory.mktemp("saved") / "mlp.safetensors")


def copy_edited(saved: Path, folder: Path, edit_meta=None, edit_tensors=None) -> Path:
    """A copy of the saved checkpoint with its description or tensors changed in place."""
    tensors, meta = checkpoint.read_checkpoint(saved)
    if edit_meta is not None:
        edit_meta(meta)
    if edit_tensors is not None:
        edit_tensors(tensors)
    path = folder / "edited.safetensors"
    safetensors.torch.save_file(tensors, str(path), {checkpoint.METADATA_KEY: json.dumps(meta)})
    return path


def group(meta: dict) -> dict:
    return meta["optimizer"]["model"]["param_groups"][0]


def loaders():
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    resumed = TrainConfig.from_dict({**TINY.to_dict(), "max_steps": 8})
    return {
        "read": checkpoint.read_checkpoint,
        "load": manager.load_checkpoint,
        "evaluate": evaluate_checkpoint,
        "resume": lambda path: manager.submit(resumed, resume=path),
    }


def refusals(path: Path, which=("read", "load", "evaluate", "resume")) -> dict[str, str]:
    messages = {}
    for name, load in loaders().items():
        if name not in which:
            continue
        with pytest.raises(DeeparchError) as raised:
            load(path)
        messages[name] = str(raised.value)
    return messages


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m deeparch ...` in a process of its own: a crash there cannot end pytest."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "deeparch", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ---- the optimizer's parameter numbering (the crash of issue 10) -------------------------------


def test_swapped_parameter_numbers_are_refused_before_pytorch_sees_them(saved, tmp_path):
    # PyTorch maps saved state through these numbers: swapped, fc1.weight's fused Adam step would
    # run over fc1.bias's buffers (a SIGSEGV, exit 139, for the default MLP).
    def swap(meta):
        params = group(meta)["params"]
        params[0], params[1] = params[1], params[0]

    path = copy_edited(saved, tmp_path, edit_meta=swap)
    message = (
        f"{path} is damaged: optimizer.model.param_groups[0].params in its metadata is "
        "[1, 0, 2, 3], not the parameter numbers 0 to 3 in order"
    )
    assert set(refusals(path).values()) == {message}
    ran = cli("train", "mlp", "--resume", str(path), "--max-steps", "8", cwd=tmp_path)
    assert (ran.returncode, ran.stderr) == (2, f"deeparch: error: {message}\n")


def test_all_zero_parameter_numbers_are_refused(saved, tmp_path):
    path = copy_edited(saved, tmp_path, edit_meta=lambda meta: group(meta).update(params=[0] * 4))
    message = (
        f"{path} is damaged: optimizer.model.param_groups[0].params in its metadata is "
        "[0, 0, 0, 0], not the parameter numbers 0 to 3 in order"
    )
    assert set(refusals(path).values()) == {message}


def test_a_dropped_parameter_number_leaves_its_state_without_a_parameter(saved, tmp_path):
    path = copy_edited(saved, tmp_path, edit_meta=lambda meta: group(meta).update(params=[0, 1, 2]))
    message = (
        f"{path} is damaged: its tensor 'optimizer/model/3/exp_avg' belongs to parameter 3, but "
        "optimizer 'model' has 3 parameters; save or download it again"
    )
    assert set(refusals(path).values()) == {message}


def test_an_added_parameter_number_does_not_fit_the_model(saved, tmp_path):
    path = copy_edited(
        saved, tmp_path, edit_meta=lambda meta: group(meta).update(params=[*range(5)])
    )
    message = (
        "the checkpoint's optimizer 'model' has parameter groups of [5] parameters, but here they "
        "have [4]; the optimizer state was edited or damaged"
    )
    assert refusals(path, which=("load", "resume")) == {"load": message, "resume": message}


# ---- the optimizer's numbers and tensors -------------------------------------------------------


@pytest.mark.parametrize("lr", [-1.0, 1e30, 0.0])
def test_an_optimizer_lr_outside_trainconfig_bounds_is_refused(saved, tmp_path, lr):
    path = copy_edited(saved, tmp_path, edit_meta=lambda meta: group(meta).update(lr=lr))
    message = (
        f"the checkpoint's optimizer.model.param_groups[0].lr is {lr!r}, not a number from "
        f"1e-06 to 10; {EDITED}"
    )
    messages = refusals(path, which=("load", "resume"))
    assert messages == {"load": message, "resume": message}
    evaluate_checkpoint(path)  # evaluating uses the weights alone


def test_a_nan_optimizer_lr_is_refused_on_reading(saved, tmp_path):
    path = copy_edited(saved, tmp_path, edit_meta=lambda meta: group(meta).update(lr=math.nan))
    message = (
        f"{path} is damaged: optimizer.model.param_groups[0].lr in its metadata is nan, not a "
        "finite number, true, false, null or a list of numbers"
    )
    assert set(refusals(path).values()) == {message}


def set_tensor(key: str, value):
    def edit(tensors):
        tensors[key] = value(tensors[key]) if callable(value) else value

    return edit


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("optimizer/model/0/step", torch.tensor(1e30), "counts 1e+30 steps"),
        ("optimizer/model/0/step", torch.tensor(-1.0), "counts -1 steps"),
        ("optimizer/model/0/step", torch.tensor(math.nan), "counts nan steps"),
        ("optimizer/model/0/step", torch.tensor(2.5), "counts 2.5 steps"),
        ("optimizer/model/0/step", torch.tensor(6.0), "counts 6 steps"),
    ],
)
def test_step_counts_must_be_whole_and_within_the_run(saved, tmp_path, key, value, problem):
    path = copy_edited(saved, tmp_path, edit_tensors=set_tensor(key, value))
    message = (
        f"{path} is damaged: its tensor {key!r} {problem}, not a whole number from 0 to 5, the "
        "step the run reached; save or download it again"
    )
    assert set(refusals(path).values()) == {message}


def test_negative_running_squares_are_refused(saved, tmp_path):
    key = "optimizer/model/1/exp_avg_sq"
    path = copy_edited(saved, tmp_path, edit_tensors=set_tensor(key, lambda t: t - 1))
    (message,) = set(refusals(path).values())
    assert message.startswith(f"{path} is damaged: its tensor {key!r} holds negative numbers (")
    assert message.endswith("but it is a running average of squares; save or download it again")


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.bfloat16])
def test_moments_in_another_dtype_are_refused(saved, tmp_path, dtype):
    # load_state_dict would cast them to float32 without a word (float16 moments: val_loss 821).
    key = "optimizer/model/0/exp_avg"
    path = copy_edited(saved, tmp_path, edit_tensors=set_tensor(key, lambda t: t.to(dtype)))
    name = str(dtype).removeprefix("torch.")
    message = (
        f"the checkpoint's optimizer tensor {key!r} is {name}, but parameter layers.fc1.weight "
        "is float32; the optimizer state was edited or damaged"
    )
    assert refusals(path, which=("load", "resume")) == {"load": message, "resume": message}
    ran = cli("train", "mlp", "--resume", str(path), "--max-steps", "8", cwd=tmp_path)
    assert (ran.returncode, ran.stderr) == (2, f"deeparch: error: {path} does not fit: {message}\n")


def test_a_missing_moment_is_refused(saved, tmp_path):
    def drop(tensors):
        del tensors["optimizer/model/2/exp_avg_sq"]

    path = copy_edited(saved, tmp_path, edit_tensors=drop)
    message = (
        "the checkpoint's optimizer 'model' keeps ['exp_avg', 'step'] for parameter "
        "output.weight, but Adam keeps ['exp_avg', 'exp_avg_sq', 'step']; the optimizer state "
        "was edited or damaged"
    )
    assert refusals(path, which=("load", "resume")) == {"load": message, "resume": message}


@pytest.mark.parametrize(
    "dtype",
    [torch.bool, torch.int32, torch.uint8, torch.float8_e4m3fn, torch.complex64, torch.float16],
)
def test_weights_in_another_dtype_are_refused(saved, tmp_path, dtype):
    key = "layers.fc1.weight"
    path = copy_edited(saved, tmp_path, edit_tensors=set_tensor(key, lambda t: t.to(dtype)))
    name = str(dtype).removeprefix("torch.")
    message = (
        f"tensor {key!r} is {name} in the checkpoint but float32 in architecture 'mlp'; deeparch "
        "writes every tensor in its model's own dtype, so the file was edited or written by "
        "another program"
    )
    messages = refusals(path, which=("load", "evaluate", "resume"))
    assert set(messages.values()) == {message}
    ran = cli("evaluate", str(path), cwd=tmp_path)
    assert (ran.returncode, ran.stderr) == (2, f"deeparch: error: {path} does not fit: {message}\n")


# ---- the counters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            {"step": 10**9, "epoch_step": 10**9},
            "progress.step is 1,000,000,000, but its train_config trains at most 5 steps on mnist",
        ),
        (
            {"epoch": 10**9},
            "progress.epoch is 1000000000, more than the 2 epochs its train_config trains",
        ),
        (
            {"epoch": 1},
            "progress (step 5, epoch 1, epoch_step 5) does not fit 62 steps per epoch "
            "(batch_size 64 on 4,000 training samples): step should be epoch x 62 + epoch_step",
        ),
        ({"epoch_step": 6}, "progress.epoch_step 6 is more than progress.step 5"),
        (
            {"epoch_loss_sum": math.nan},
            "progress.epoch_loss_sum is nan, but the run ended finished, not diverged",
        ),
    ],
)
def test_counters_that_do_not_fit_the_run_are_refused(saved, tmp_path, edit, problem):
    path = copy_edited(saved, tmp_path, edit_meta=lambda meta: meta["progress"].update(edit))
    message = f"the checkpoint's {problem}; {EDITED}"
    assert refusals(path, which=("load", "resume")) == {"load": message, "resume": message}


def test_a_step_beyond_2_to_the_53_is_refused_on_reading(saved, tmp_path):
    path = copy_edited(saved, tmp_path, edit_meta=lambda m: m["progress"].update(step=10**30))
    message = (
        f"{path} is damaged: progress.step in its metadata is {10**30}, not a whole number from "
        "0 to 2^53"
    )
    assert set(refusals(path).values()) == {message}


def test_resuming_below_the_saved_step_is_an_error(saved, tmp_path, capsys):
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    with pytest.raises(ConfigError) as raised:
        manager.submit(TrainConfig.from_dict({**TINY.to_dict(), "max_steps": 3}), resume=saved)
    assert (raised.value.field, raised.value.value) == ("max_steps", 3)
    assert main(["train", "mlp", "--resume", str(saved), "--max-steps", "3"]) == 2
    assert capsys.readouterr().err == (
        "deeparch: error: max_steps=3 is not allowed: 0 (all epochs) or at least 5, the step the "
        "checkpoint reached (a resumed run goes on from the checkpoint's step)\n"
    )


def test_resuming_with_fewer_epochs_than_trained_is_an_error(tmp_path):
    config = TrainConfig(arch="logistic_regression", epochs=3, batch_size=256)
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(config)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    path = job.save_checkpoint(tmp_path)
    with pytest.raises(ConfigError) as raised:
        manager.submit(TrainConfig.from_dict({**config.to_dict(), "epochs": 2}), resume=path)
    assert str(raised.value) == (
        "epochs=2 is not allowed: at least 3, the epochs the checkpoint has trained (a resumed "
        "run goes on from the checkpoint's step; raise epochs to train more)"
    )


# ---- a resumed run's optimizer takes the new hyperparameters -----------------------------------


def resumed_with(saved: Path, hold: bool = False, **changes):
    config = TrainConfig.from_dict({**TINY.to_dict(), "max_steps": 8, **changes})
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    if hold:  # queued, so the restored state can be read before the first step changes it
        return held(manager, config, resume=saved), manager
    return manager.submit(config, resume=saved)


def test_resume_with_another_lr_trains_at_that_lr_from_the_saved_moments(saved):
    tensors, _ = checkpoint.read_checkpoint(saved)
    job, manager = resumed_with(saved, hold=True, lr=0.05, weight_decay=0.01)
    restored = {}

    def read_optimizer(inner):  # as it is built to train, before its first step
        optimizer = inner.task.optimizers["model"]
        groups = optimizer.param_groups
        restored["groups"] = [(g["lr"], g["weight_decay"]) for g in groups]
        restored["exp_avg"] = optimizer.state[groups[0]["params"][0]]["exp_avg"].clone()

    in_training(job, read_optimizer)
    manager.set_max_running(1)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    assert restored["groups"] == [(0.05, 0.01)]
    assert torch.equal(restored["exp_avg"], tensors["optimizer/model/0/exp_avg"])
    same = resumed_with(saved)
    assert same.wait(WAIT_S) and same.state == "finished"
    # a different learning rate gives different losses from the first resumed step on
    changed, kept = (j.snapshot()["losses"]["loss"] for j in (job, same))
    assert changed[:5] == kept[:5] and changed[6][1] != kept[6][1]
    assert json.loads(json.dumps(job.snapshot()["config"]))["lr"] == 0.05


# ---- descriptions and paths that used to raise a traceback or block ---------------------------


def test_a_description_nested_100000_deep_is_refused(saved, tmp_path):
    tensors = safetensors.torch.load_file(str(saved))
    _, meta = checkpoint.read_checkpoint(saved)
    text = json.dumps(meta)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = tmp_path / "deep.safetensors"
    safetensors.torch.save_file(tensors, str(path), {checkpoint.METADATA_KEY: text})
    message = (
        f"{path} is damaged: its deeparch metadata is nested too deeply to be a deeparch "
        "description; save or download it again"
    )
    assert set(refusals(path).values()) == {message}


def test_an_arch_config_that_is_not_an_object_is_refused_on_resume(saved, tmp_path, capsys):
    path = copy_edited(
        saved, tmp_path, edit_meta=lambda meta: meta["train_config"].update(arch_config=[1])
    )
    message = (
        f"{path} is damaged: train_config.arch_config in its metadata is [1], not a JSON object"
    )
    assert set(refusals(path).values()) == {message}
    assert main(["train", "mlp", "--resume", str(path)]) == 2
    assert capsys.readouterr().err == f"deeparch: error: {message}\n"


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.safetensors"
    os.mkfifo(fifo)
    ran = cli("evaluate", str(fifo), cwd=tmp_path)  # would block forever if it opened the FIFO
    assert (ran.returncode, ran.stderr) == (
        2,
        f"deeparch: error: {fifo} is a FIFO (named pipe), not a checkpoint file; give the path "
        "of a .safetensors file\n",
    )


@pytest.mark.parametrize(
    ("target", "kind"), [("/dev/urandom", "a character device"), ("/", "a folder")]
)
def test_a_link_to_something_that_is_no_file_is_refused(tmp_path, target, kind):
    link = tmp_path / "x.safetensors"
    link.symlink_to(target)
    message = (
        f"{link} (a link to {target}) is {kind}, not a checkpoint file; give the path of a "
        ".safetensors file"
    )
    assert set(refusals(link).values()) == {message}


@pytest.mark.parametrize(("given", "blank"), [("", "empty"), ("  ", "only spaces")])
def test_an_empty_checkpoint_path_is_an_error(given, blank, capsys):
    assert main(["evaluate", given]) == 2
    assert capsys.readouterr().err == (
        f"deeparch: error: the checkpoint path is {blank}; give the path of a .safetensors file\n"
    )


# ---- found by tests/test_fuzz.py ---------------------------------------------------------------


def test_state_missing_for_one_parameter_is_refused(tmp_path):
    # Fused SGD over parameters with and without a momentum buffer failed with a TypeError.
    config = TrainConfig.from_dict({**TINY.to_dict(), "optimizer": "sgd"})
    job = JobManager(max_running=1, heartbeat_timeout=0).submit(config)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    path = job.save_checkpoint(tmp_path / "sgd.safetensors")
    edited = copy_edited(
        path, tmp_path, edit_tensors=lambda t: t.pop("optimizer/model/1/momentum_buffer")
    )
    resumed = TrainConfig.from_dict({**config.to_dict(), "max_steps": 8})
    with pytest.raises(DeeparchError) as raised:
        JobManager(max_running=1, heartbeat_timeout=0).submit(resumed, resume=edited)
    assert str(raised.value) == (
        "the checkpoint's optimizer 'model' keeps nothing for parameter layers.fc1.bias, but SGD "
        "keeps ['momentum_buffer']; the optimizer state was edited or damaged"
    )


def test_a_history_out_of_step_order_is_refused(saved, tmp_path):
    def shuffle(meta):
        points = meta["history"]["losses"]["loss"]
        points[0], points[1] = points[1], points[0]

    path = copy_edited(saved, tmp_path, edit_meta=shuffle)
    message = (
        f"{path} is damaged: history.losses.loss in its metadata has step 1 after step 2 "
        "(entry 1), not steps in increasing order"
    )
    assert set(refusals(path).values()) == {message}


def test_a_parameter_group_setting_of_another_kind_is_refused(saved, tmp_path):
    path = copy_edited(saved, tmp_path, edit_meta=lambda meta: group(meta).update(amsgrad=[1]))
    message = (
        "the checkpoint's optimizer.model.param_groups[0].amsgrad is [1], but Adam's amsgrad is "
        "true, false or null; the optimizer state was edited or damaged"
    )
    assert refusals(path, which=("load", "resume")) == {"load": message, "resume": message}


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("dataset", "mnist", "dataset is 'mnist', but its train_config trains mlp on 'digits'"),
        ("task", "gan", "task is 'gan', but its train_config trains mlp as 'classify'"),
    ],
)
def test_a_description_that_disagrees_with_its_train_config_is_refused(
    tmp_path, field, value, problem
):
    config = TrainConfig.from_dict({**TINY.to_dict(), "dataset": "digits"})
    job = JobManager(max_running=1, heartbeat_timeout=0).submit(config)
    assert job.wait(WAIT_S) and job.state == "finished", job.reason
    path = copy_edited(
        job.save_checkpoint(tmp_path / "digits.safetensors"),
        tmp_path,
        edit_meta=lambda meta: meta.update({field: value}),
    )
    with pytest.raises(DeeparchError) as raised:
        JobManager(max_running=1, heartbeat_timeout=0).load_checkpoint(path)
    assert str(raised.value) == f"the checkpoint's {problem}; {EDITED}"


def test_a_header_whose_length_starts_like_a_pickle_is_still_read(saved, tmp_path):
    # A safetensors file starts with its header's length; one whose low byte is 0x80 was taken
    # for a pickle (protocol 2+ starts with 0x80) and refused.
    tensors, meta = checkpoint.read_checkpoint(saved)
    path = tmp_path / "padded.safetensors"
    for padding in range(512):
        meta["padding"] = " " * padding
        text = json.dumps(meta)
        safetensors.torch.save_file(tensors, str(path), {checkpoint.METADATA_KEY: text})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80 and path.read_bytes()[8:9] == b"{"
    _, again = checkpoint.read_checkpoint(path)
    assert again["progress"] == meta["progress"]
