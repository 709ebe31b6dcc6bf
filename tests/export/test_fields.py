"""Every TrainConfig field is written into the exported script, changes nothing a run computes,
or is refused by export naming it: never silently dropped. A field written is shown to work: the
script trained with it reproduces the engine's run (losses step by step, validation loss at each
epoch, the final metrics), and the engine's run with the field at its default differs, so the
comparison could have failed. A new field fails here until it is sorted into one of the tables."""

import dataclasses
import re
import subprocess
import sys

import pytest

from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import JobManager
from deeparch.errors import ConfigError
from deeparch.export.script import WITHOUT_EFFECT, WRITTEN_FIELDS, export_parts, export_script

STEP_LINE = re.compile(r"^step \d+ loss (\S+)$", re.MULTILINE)
EPOCH_LINE = re.compile(r"^epoch \d+ val_loss (\S+) val_accuracy \S+$", re.MULTILINE)
FINAL_LINE = re.compile(r"^final val_loss (\S+) val_accuracy (\S+)$", re.MULTILINE)
DEVICE_LINE = re.compile(r"^training on (\S+)$", re.MULTILINE)

BASE = {"arch": "mlp", "dataset": "digits", "arch_config": {"hidden_sizes": (32,)},
        "batch_size": 32, "max_steps": 6}  # fmt: skip
WHOLE_EPOCHS = {"train_subset": 64, "max_steps": 0}  # 2 steps an epoch, every epoch trained
# field -> the run (on top of BASE) in which the field's value changes what is trained.
SHOWN_BY = {
    "arch": {"arch": "softmax_regression", "arch_config": {}},
    "dataset": {},  # digits, against the mlp's default mnist
    "arch_config": {},  # one hidden layer of 32
    "optimizer": {"optimizer": "sgd", "lr": 0.05},
    "lr": {"lr": 0.01},
    "momentum": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.5},
    "batch_size": {},
    "epochs": {**WHOLE_EPOCHS, "epochs": 3},
    "weight_decay": {"weight_decay": 0.05},
    "l1": {"l1": 1e-3},
    "grad_clip": {"grad_clip": 0.1},
    "seed": {"seed": 3},
    "max_steps": {},  # 6 steps, against both epochs
    "lr_schedule": {"lr_schedule": "cosine"},
    "lr_step_epochs": {**WHOLE_EPOCHS, "epochs": 3, "lr_schedule": "step", "lr_step_epochs": 2},
    "lr_gamma": {**WHOLE_EPOCHS, "lr_schedule": "step", "lr_gamma": 0.5},
    # 64 samples at lr 0.05 overfit within a few epochs: the validation loss turns up.
    "early_stopping": {**WHOLE_EPOCHS, "epochs": 30, "lr": 0.05, "early_stopping": 1},
    "train_subset": {"train_subset": 100},
    "freeze": {"freeze": "layers"},  # the hidden layer keeps its initial weights
}
# Written, but only one device is here: the script must say it trains where it was told to (on
# another device the numbers differ from the CPU's only by rounding).
DEVICE_RUN = {"device": "cpu"}
# field -> a value export refuses, naming the field.
REFUSED = {
    "classes": "0,1",
    "augment": True,
    "reconstruction_loss": "l1",  # refused by TrainConfig.validate: classifiers have no such loss
}


def engine_run(config: TrainConfig) -> dict:
    job = JobManager(max_running=1, heartbeat_timeout=0).submit(config)
    assert job.wait(120)
    assert job.state == "finished", job.reason
    snapshot = job.snapshot()
    final = snapshot["final_metrics"]
    return {
        "losses": [value for _step, value in snapshot["losses"]["loss"]],
        "epoch_val_losses": [epoch["val_loss"] for epoch in snapshot["epoch_metrics"]],
        "final": [final["val_loss"], final["val_accuracy"]],
    }


def script_run(source: str, tmp_path) -> tuple[dict, str]:
    path = tmp_path / "exported.py"
    path.write_text(source)
    # -I: isolated, so the script cannot import deeparch from the checkout even by accident.
    done = subprocess.run([sys.executable, "-I", str(path)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    (final,) = FINAL_LINE.findall(out)
    outcome = {
        "losses": [float(loss) for loss in STEP_LINE.findall(out)],
        "epoch_val_losses": [float(loss) for loss in EPOCH_LINE.findall(out)],
        "final": [float(value) for value in final],
    }
    return outcome, out


def field_at_default(values: dict, name: str) -> dict:
    """The same run with one field back at TrainConfig's default."""
    return {k: v for k, v in values.items() if k != name}


def assert_same_run(got: dict, expected: dict) -> None:
    assert len(got["losses"]) == len(expected["losses"]) > 0
    assert len(got["epoch_val_losses"]) == len(expected["epoch_val_losses"])
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("name", [field.name for field in dataclasses.fields(TrainConfig)])
def test_each_field_is_exported_or_refused(name, tmp_path):
    if name in REFUSED:
        assert name not in WRITTEN_FIELDS and name not in WITHOUT_EFFECT
        config = dataclasses.replace(TrainConfig.from_dict(BASE), **{name: REFUSED[name]})
        with pytest.raises(ConfigError) as refused:
            export_script(config)
        assert refused.value.field == name and repr(REFUSED[name]) in str(refused.value)
        return
    if name in WITHOUT_EFFECT:
        check_without_effect(name)
        return
    assert name in WRITTEN_FIELDS, (
        f"TrainConfig.{name} is new: write it into the exported script (WRITTEN_FIELDS in "
        "deeparch/export/script.py) and show it here in SHOWN_BY, or list a value export "
        "refuses in REFUSED"
    )
    if name == "device":
        config = TrainConfig.from_dict({**BASE, **DEVICE_RUN})
        got, out = script_run(export_script(config), tmp_path)
        assert DEVICE_LINE.findall(out) == [DEVICE_RUN["device"]]
        assert_same_run(got, engine_run(config))
        return
    values = {**BASE, **SHOWN_BY[name]}
    config = TrainConfig.from_dict(values)
    expected = engine_run(config)
    got, _ = script_run(export_script(config), tmp_path)
    assert_same_run(got, expected)
    assert engine_run(TrainConfig.from_dict(field_at_default(values, name))) != expected


def check_without_effect(name: str) -> None:
    """The engine trains the same with the field changed, and the script's code is the same."""
    values = {**BASE, **WHOLE_EPOCHS}
    changed = {**values, name: 1}
    assert changed[name] != getattr(TrainConfig(), name)
    configs = [TrainConfig.from_dict(v) for v in (values, changed)]
    assert engine_run(configs[0]) == engine_run(configs[1])
    parts = [export_parts(config) for config in configs]
    assert all(parts[0][key] == parts[1][key] for key in parts[0] if key != "header")


def test_a_field_export_cannot_write_is_refused_even_when_new(monkeypatch):
    """A field named in no table (as a new one would be) is refused away from its default."""
    import deeparch.export.script as script

    monkeypatch.setattr(script, "WRITTEN_FIELDS", tuple(f for f in WRITTEN_FIELDS if f != "l1"))
    config = TrainConfig.from_dict({**BASE, "l1": 1e-3})
    with pytest.raises(ConfigError, match="l1=0.001 is not allowed: 0.0 .the default."):
        export_script(config)
    export_script(TrainConfig.from_dict(BASE))  # at its default the field is no obstacle


def test_a_train_subset_larger_than_the_training_set_is_refused():
    with pytest.raises(ConfigError) as refused:
        export_script(TrainConfig.from_dict({**BASE, "train_subset": 5000}))
    assert refused.value.field == "train_subset"


def test_an_unknown_part_to_freeze_is_refused_naming_the_parts():
    with pytest.raises(ConfigError) as refused:
        export_script(TrainConfig.from_dict({**BASE, "freeze": "encoder"}))
    assert refused.value.field == "freeze" and "layers" in str(refused.value)
