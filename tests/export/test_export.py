"""An exported script reproduces the engine's run without deeparch: the same losses step by step."""

import json
import re
import subprocess
import sys

import nbformat
import pytest
from torch import nn

from deeparch.cli.main import main
from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import JobManager
from deeparch.errors import ConfigError
from deeparch.export.notebook import export_notebook
from deeparch.export.script import export_script, refuse_kernel_dropout
from deeparch.models import list_archs

STEPS = 6
STEP_LINE = re.compile(r"^step (\d+) loss (\S+)$", re.MULTILINE)
RUNS = {
    "mlp, adam": {"arch": "mlp", "dataset": "digits", "arch_config": {"hidden_sizes": (32,)},
                  "seed": 3, "batch_size": 32},
    "softmax regression, sgd momentum 0.5, l1, clipping": {
        "arch": "softmax_regression", "dataset": "digits", "optimizer": "sgd", "lr": 0.05,
        "l1": 1e-3, "grad_clip": 0.5, "weight_decay": 1e-3, "batch_size": 16, "momentum": 0.5},
    # Dropout's masks, step by step, from the run's own generator as the engine draws them.
    "mlp, dropout 0.3": {"arch": "mlp", "dataset": "digits", "batch_size": 32,
                         "arch_config": {"hidden_sizes": (32,), "dropout": 0.3}, "seed": 3},
    "cnn, dropout 0.5": {"arch": "cnn", "dataset": "mnist", "batch_size": 16,
                         "arch_config": {"dense_width": 16, "dropout": 0.5}, "seed": 1},
}  # fmt: skip
ENGINE_MASKS = "return drop_with(x, self.p, MASKS, self.inplace)"


def engine_losses(config: TrainConfig) -> list[float]:
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    job = manager.submit(config)
    assert job.wait(120)
    assert job.state == "finished", job.reason
    return [value for _step, value in job.snapshot()["losses"]["loss"]]


def script_losses(source: str, tmp_path, steps: int) -> list[float]:
    path = tmp_path / "exported.py"
    path.write_text(source)
    # -I: isolated, so the script cannot import deeparch from the checkout even by accident.
    done = subprocess.run([sys.executable, "-I", str(path), "--max-steps", str(steps)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [float(loss) for _step, loss in STEP_LINE.findall(done.stdout)]


@pytest.mark.parametrize("label", list(RUNS))
def test_the_exported_script_trains_as_the_engine_does(label, tmp_path):
    config = TrainConfig.from_dict({**RUNS[label], "max_steps": STEPS})
    source = export_script(config)
    assert "deeparch" not in "\n".join(
        line for line in source.splitlines() if line.startswith(("import", "from"))
    )
    expected = engine_losses(config)
    got = script_losses(source, tmp_path, STEPS)
    assert len(got) == len(expected) == STEPS
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_with_the_global_generators_masks_the_losses_would_differ(tmp_path):
    """The check above can fail: nn.Dropout's masks (torch's global generator) train otherwise."""
    config = TrainConfig.from_dict({**RUNS["mlp, dropout 0.3"], "max_steps": STEPS})
    source = export_script(config)
    assert source.count(ENGINE_MASKS) == 1 and source.count("MASKS.manual_seed(") == 1
    global_masks = source.replace(
        ENGINE_MASKS, "return nn.functional.dropout(x, self.p, True, self.inplace)"
    )
    got = script_losses(global_masks, tmp_path, STEPS)
    assert len(got) == STEPS and got != pytest.approx(engine_losses(config), rel=1e-5, abs=1e-6)


def test_a_stacked_recurrent_layers_dropout_is_refused_naming_dropout():
    """PyTorch's recurrent kernel draws it from the global generator, which takes no seed of the
    run's: no script could draw the engine's masks, so export refuses it."""
    stacked = nn.Sequential(nn.LSTM(8, 16, num_layers=2, dropout=0.3))
    with pytest.raises(ConfigError) as refused:
        refuse_kernel_dropout(stacked)
    assert (refused.value.field, refused.value.value) == ("dropout", 0.3)
    assert "0 for an exported run of a stacked recurrent layer" in str(refused.value)
    refuse_kernel_dropout(nn.Sequential(nn.LSTM(8, 16, num_layers=2)))  # no dropout: no obstacle
    # The registry's stacked recurrent layers train sequence tasks, which export refuses first.
    lstm = TrainConfig.from_dict({"arch": "lstm", "arch_config": {"num_layers": 2, "dropout": 0.3}})
    with pytest.raises(ConfigError) as refused:
        export_script(lstm)
    assert refused.value.field == "arch" and "sequence task" in str(refused.value)


def test_the_notebook_runs_the_same_code(tmp_path):
    config = TrainConfig.from_dict({**RUNS["mlp, adam"], "max_steps": 3})
    notebook = nbformat.reads(export_notebook(config), as_version=4)
    nbformat.validate(notebook)
    code = "\n\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert code.rstrip().endswith("main(MAX_STEPS)")
    got = script_losses(code.replace("main(MAX_STEPS)", "main(3)"), tmp_path, 3)
    assert got == pytest.approx(engine_losses(config), rel=1e-5, abs=1e-6)
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    assert any("class MLP(nn.Module)" in text for text in markdown)  # the source it came from


@pytest.mark.parametrize("arch", list_archs())
def test_every_architecture_exports_or_says_why(arch):
    config = TrainConfig.from_dict({"arch": arch})
    try:
        source = export_script(config)
    except ConfigError as error:
        assert error.field in ("arch", "dataset")
        assert arch in str(error) or error.field == "dataset"
        return
    compile(source, f"{arch}.py", "exec")
    assert "model = nn.Sequential(OrderedDict([" in source


def test_the_cli_writes_both_formats(tmp_path, capsys):
    script, notebook = tmp_path / "run.py", tmp_path / "run.ipynb"
    args = ["export", "mlp", "--dataset", "digits", "--set", "hidden_sizes=16", "--set", "epochs=1"]
    assert main([*args, "--out", str(script)]) == 0
    assert main([*args, "--format", "notebook", "--out", str(notebook)]) == 0
    assert "nn.Linear(in_features=64, out_features=16, bias=True)" in script.read_text()
    assert json.loads(notebook.read_text())["nbformat"] == 4
    assert main([*args, "--out", str(tmp_path / "run.txt")]) == 2
    assert "ending in .py" in capsys.readouterr().err
    assert main(["export", "rnn"]) == 2
