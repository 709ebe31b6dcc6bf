"""`python -m deeparch train / evaluate / bench`, run in-process through cli.main."""

import json
import pickle

import pytest
import torch

from deeparch.cli import main as cli
from deeparch.tasks.classify import ClassifyTask

SMALL_MLP = ["--set", "hidden_sizes=32", "--batch-size", "32"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def last_json_line(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.strip()]
    return json.loads(lines[-1])


@pytest.mark.slow
def test_train_mlp_on_bundled_mnist_reaches_85_percent(capsys, tmp_path):
    code, out, err = run(capsys, "train", "mlp", "--epochs", "2", "--out", str(tmp_path))
    assert code == 0, err
    result = last_json_line(out)
    assert result["state"] == "finished" and result["dataset"] == "mnist"  # the default dataset
    assert result["epoch"] == 2 and result["step"] == 124  # 4000 // 64 = 62 steps per epoch
    assert result["val_accuracy"] >= 0.85
    assert "step 124/124" in err  # the progress went to stderr
    # not a terminal: a line per epoch and a last one, never a line redrawn with "\r"
    lines = err.splitlines()
    assert len(lines) == 3 and "\r" not in err
    assert lines[0].startswith("epoch 1/2 (step 62/124): train_loss ")
    assert lines[1].startswith("epoch 2/2 (step 124/124): train_loss ")
    assert lines[2].startswith("step 124/124 epoch 2/2 loss ")
    assert result["checkpoint"] == str(tmp_path / "mlp-mnist.safetensors")
    assert (tmp_path / "mlp-mnist.json").exists()

    code, out, _ = run(capsys, "evaluate", result["checkpoint"])
    assert code == 0
    evaluated = json.loads(out)
    assert evaluated["val_accuracy"] == pytest.approx(result["val_accuracy"])
    assert evaluated["val_loss"] == pytest.approx(result["val_loss"])


def test_set_reaches_both_the_architecture_and_training(capsys, tmp_path):
    code, out, err = run(
        capsys, "train", "mlp", *SMALL_MLP, "--max-steps", "5", "--set", "l1=1e-4",
        "--optimizer", "sgd", "--seed", "3", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    described = json.loads((tmp_path / "mlp-mnist.json").read_text())
    config = described["train_config"]
    assert config["arch_config"] == {"hidden_sizes": [32]}
    assert (config["l1"], config["optimizer"], config["seed"], config["max_steps"]) == (
        1e-4, "sgd", 3, 5,
    )  # fmt: skip
    assert "l1" in described["history"]["losses"]
    assert last_json_line(out)["step"] == 5


def test_resume_continues_from_a_checkpoint(capsys, tmp_path):
    code, out, _ = run(
        capsys, "train", "mlp", *SMALL_MLP, "--max-steps", "10", "--out", str(tmp_path)
    )
    assert code == 0
    checkpoint = last_json_line(out)["checkpoint"]
    code, out, err = run(
        capsys, "train", "mlp", "--resume", checkpoint, "--max-steps", "20", "--out", str(tmp_path)
    )
    assert code == 0, err
    assert last_json_line(out)["step"] == 20


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "no_such_arch"],
        ["train", "mlp", "--set", "no_such_field=1"],
        ["train", "mlp", "--set", "hidden_sizes"],
        ["train", "mlp", "--lr", "-1"],
        ["train", "mlp", "--dataset", "mnist1d"],
        ["train", "mlp", "--optimizer", "lbfgs"],
        ["train", "mlp", "--threads", "0"],
        ["train", "mlp", "--threads", "two"],
        ["bench", "--threads", "0"],
        ["bench", "--repeats", "0"],
        ["bench", "--steps", "0"],
        ["bench", "--archs", "vae"],
        ["bench", "--archs", "nosuch"],
        ["bench-explore", "--repeats", "0"],
        ["evaluate", "no/such/checkpoint.safetensors"],
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("deeparch: error:")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "mlp", "--set", "lr=0.1", "--set", "lr=0.2"],
            "--set='lr=0.2' is not allowed: each key once; lr is already set to '0.1' (drop one "
            "of the two)",
        ),
        (
            ["summary", "mlp", "--set", "hidden_sizes=8", "--set", " hidden_sizes =16"],
            "--set=' hidden_sizes =16' is not allowed: each key once; hidden_sizes is already "
            "set to '8' (drop one of the two)",
        ),
        (
            ["train", "mlp", "--lr", "0.1", "--set", "lr=0.2"],
            "--lr='0.1' is not allowed: either --lr or --set lr=..., not both (--set lr=0.2 was "
            "given too)",
        ),
        (
            ["train", "mlp", "--max-steps", "3", "--set", "max_steps=4"],
            "--max-steps='3' is not allowed: either --max-steps or --set max_steps=..., not both "
            "(--set max_steps=4 was given too)",
        ),
        (
            ["train", "mlp", "--set", "hidden_sizes=1 6"],
            "hidden_sizes='1 6' is not allowed: a comma-separated list of at most 8 integers, "
            "each from 1 to 4096",
        ),
    ],
    ids=["--set twice", "--set twice, spaced", "--lr and --set lr", "--max-steps twice", "1 6"],
)
def test_settings_given_twice_or_garbled_are_refused(capsys, argv, message):
    assert run(capsys, *argv) == (2, "", f"deeparch: error: {message}\n")


@pytest.mark.parametrize("command", [["train", "mlp"], ["summary", "mlp"], ["evaluate", "x"]])
@pytest.mark.parametrize("name", ["", " "])
def test_an_empty_dataset_name_is_refused_not_read_as_the_default(capsys, command, name):
    code, out, err = run(capsys, *command, "--dataset", name)
    assert (code, out) == (2, "")
    assert err.startswith(f"deeparch: error: --dataset={name!r} is not allowed: a dataset name: ")


def test_a_pickled_checkpoint_exits_2_and_never_runs(capsys, tmp_path):
    marker = tmp_path / "pwned"

    class CreatesMarker:
        def __reduce__(self):
            return (marker.touch, ())

    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps(CreatesMarker()))
    code, _, err = run(capsys, "evaluate", str(evil))
    assert code == 2 and "pickled PyTorch file" in err
    code, _, err = run(capsys, "train", "mlp", "--resume", str(evil))
    assert code == 2 and "pickled PyTorch file" in err
    assert not marker.exists()


def test_divergence_exits_3_with_the_reason(capsys, tmp_path):
    code, out, err = run(
        capsys, "train", "unet1d", "--optimizer", "sgd", "--lr", "10", "--max-steps", "30",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 3
    result = last_json_line(out)
    assert result["state"] == "diverged" and result["checkpoint"] is None
    # SGD at lr 10 takes unet1d's loss from ~1 to ~1e21 within a few steps, before any NaN.
    assert "deeparch: diverged: the loss exploded from" in err
    assert "try a learning rate below 10" in err


def test_a_forward_pass_that_overflows_is_divergence_not_a_failure(capsys, tmp_path):
    # At lr 10 the VAE's logvar grows until exp(logvar) is infinite; its weights are still
    # finite, but the decoder's output is NaN and binary cross-entropy refuses it with an error.
    code, out, err = run(
        capsys, "train", "vae", "--dataset", "digits", "--set", "lr=10", "--max-steps", "20",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 3, err
    assert last_json_line(out)["state"] == "diverged"
    assert "deeparch: diverged: the output of decoder.fc1 became NaN or infinite at step" in err
    assert "(RuntimeError: all elements of input should be between 0 and 1)" in err
    assert err.rstrip().endswith("try a learning rate below 10")


def test_a_failed_job_exits_1_with_the_reason(capsys, tmp_path, monkeypatch):
    def broken(self, batch):
        raise RuntimeError("simulated failure inside the training thread")

    monkeypatch.setattr(ClassifyTask, "train_step", broken)
    code, out, err = run(capsys, "train", "mlp", *SMALL_MLP, "--out", str(tmp_path))
    assert code == 1
    assert last_json_line(out)["state"] == "failed"
    assert "simulated failure inside the training thread" in err
    assert not (tmp_path / "mlp-mnist.safetensors").exists()


def test_bench_prints_samples_per_second_for_each_way(capsys, monkeypatch):
    import deeparch.cli.train as cli_train

    calls = []

    def fake_run(archs, steps, batch_size, threads, repeats):
        calls.append((archs, steps, batch_size, threads, repeats))
        way = {"engine": 950.0, "engine_in_steps": 990.0, "plain": 1000.0, "dataloader": 400.0}
        return {"mlp": {**way, "engine_vs_plain": 0.95, "engine_vs_dataloader": 2.375}}

    monkeypatch.setattr(cli_train, "run_bench", fake_run)
    code, out, _ = run(capsys, "bench", "--steps", "7", "--archs", "mlp", "--repeats", "1")
    assert code == 0
    assert calls == [(["mlp"], 7, 64, 2, 1)]
    assert "0.95" in out and "2.38" in out
    assert last_json_line(out)["mlp"]["plain"] == 1000.0


def test_bench_loops_measure_real_steps():
    from deeparch.bench.engine import dataloader_loop, engine_run, plain_loop

    assert plain_loop("mlp", 3, 16) > 0
    assert dataloader_loop("mlp", 3, 16) > 0
    engine = engine_run("mlp", 3, 16)
    assert engine["overall"] > 0 and engine["in_steps"] > 0


def test_threads_sets_the_training_threads_count_and_restores_the_callers(
    capsys, tmp_path, monkeypatch
):
    counts_in_training = []
    original = ClassifyTask.train_step

    def counting_step(self, batch):
        counts_in_training.append(torch.get_num_threads())
        return original(self, batch)

    monkeypatch.setattr(ClassifyTask, "train_step", counting_step)
    before = torch.get_num_threads()
    code, _, err = run(
        capsys, "train", "mlp", *SMALL_MLP, "--max-steps", "3", "--threads", "1",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    assert counts_in_training == [1, 1, 1]
    assert torch.get_num_threads() == before


def test_a_checkpoint_that_cannot_be_written_exits_4_and_still_prints_the_metrics(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, out, err = run(
        capsys, "train", "mlp", *SMALL_MLP, "--max-steps", "3", "--out", str(blocker)
    )
    assert code == 4
    result = last_json_line(out)
    assert result["state"] == "finished" and result["step"] == 3 and result["checkpoint"] is None
    assert "val_accuracy" in result and str(blocker) in result["checkpoint_error"]
    assert "deeparch: error: the checkpoint was not saved:" in err
    assert "Traceback" not in err


def test_a_stopped_run_reports_the_metrics_of_the_weights_it_saves(capsys, tmp_path):
    from deeparch.engine.config import TrainConfig
    from deeparch.engine.evaluate import evaluate_checkpoint
    from deeparch.engine.manager import JobManager

    config = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (16,)}, epochs=3)
    manager = JobManager(max_running=0, heartbeat_timeout=0)
    job = manager.submit(config)  # queued: its task is built when it starts
    calls = []

    def patch(inner):
        original = inner.task.train_step

        def train_step(batch):
            calls.append(1)
            if len(calls) == 70:  # mid-epoch 2 (62 steps per epoch at batch 64)
                job.stop("enough")
            return original(batch)

        inner.task.train_step = train_step

    job.call_in_training(patch)
    manager.set_max_running(1)
    assert job.wait(60) and job.state == "stopped"
    assert job.snapshot()["final_metrics"]["step"] == job.snapshot()["step"] == 70
    evaluated = evaluate_checkpoint(job.save_checkpoint(tmp_path))
    assert evaluated["val_loss"] == job.snapshot()["final_metrics"]["val_loss"]


def test_ctrl_c_while_the_job_is_prepared_exits_130_with_one_line(capsys, monkeypatch):
    from deeparch.engine.manager import JobManager

    def interrupted(self, config, owner=None, resume=None, weights_from=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(JobManager, "submit", interrupted)
    code, out, err = run(capsys, "train", "mlp")
    assert code == 130 and out == ""
    assert err == "deeparch: interrupted (Ctrl-C) before training started\n"


def test_an_architecture_trains_with_its_own_defaults_unless_told_otherwise(capsys, tmp_path):
    code, _, err = run(capsys, "train", "lstm", "--max-steps", "1", "--out", str(tmp_path))
    assert code == 0, err
    config = json.loads((tmp_path / "lstm-mnist1d.json").read_text())["train_config"]
    assert (config["epochs"], config["lr"]) == (20, 3e-3)  # lstm's train_defaults
    code, _, err = run(capsys, "train", "lstm", "--max-steps", "1", "--epochs", "4", "--lr",
                       "0.01", "--out", str(tmp_path))  # fmt: skip
    config = json.loads((tmp_path / "lstm-mnist1d.json").read_text())["train_config"]
    assert (config["epochs"], config["lr"]) == (4, 0.01)
