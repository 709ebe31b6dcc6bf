"""The command line in-process (capsys), plus one real `python -m deeparch` run."""

import csv
import io
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from deeparch.cli import main as cli_main
from deeparch.cli.main import main
from deeparch.errors import ConfigError
from deeparch.models.registry import get_arch, list_archs

REPO = Path(__file__).resolve().parents[2]
needs_cnn = pytest.mark.skipif("cnn" not in list_archs(), reason="the cnn family is not registered")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@needs_cnn
def test_summary_json(capsys):
    code, out, err = run(capsys, "summary", "cnn", "--format", "json")
    assert code == 0 and err == ""
    report = json.loads(out)
    assert report["arch"] == "cnn"
    assert report["total_params"] == report["trainable_params"] == 93_322
    assert sum(report["subtotals"].values()) == 93_322
    layers = report["layers"]
    assert {
        "name",
        "type",
        "output_shape",
        "params",
        "trainable",
        "mult_adds",
        "formula",
        "part",
    } <= set(layers[0])
    assert [layer["params"] for layer in layers if layer["params"]] == [
        320,
        18_496,
        36_928,
        36_928,
        650,
    ]
    assert layers[0]["formula"] == "32x(1x3x3)+32 = 320"
    assert layers[-1]["output_shape"] == [1, 10]


@needs_cnn
def test_summary_table_and_csv(capsys):
    code, out, _ = run(capsys, "summary", "cnn")
    assert code == 0
    assert "total parameters: 93,322" in out and "576x64+64 = 36,928" in out
    code, out, _ = run(capsys, "summary", "cnn", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sum(int(row["params"]) for row in rows) == 93_322
    assert rows[0]["output_shape"] == "1x32x26x26"


@needs_cnn
def test_summary_with_settings_and_dataset(capsys):
    code, out, _ = run(
        capsys,
        "summary",
        "cnn",
        "--set",
        "dense_width=32",
        "--dataset",
        "mnist",
        "--format",
        "json",
    )
    assert code == 0
    dense = [layer for layer in json.loads(out)["layers"] if layer["type"] == "Linear"]
    assert dense[0]["params"] == 576 * 32 + 32


def test_list_json_covers_every_architecture(capsys):
    code, out, err = run(capsys, "list", "--format", "json")
    assert code == 0 and err == ""
    catalogue = json.loads(out)
    names = [a["name"] for a in catalogue["architectures"]]
    assert names == list_archs()
    for entry in catalogue["architectures"]:
        spec = get_arch(entry["name"])
        assert entry["family"] == spec.family and entry["default_dataset"] == spec.default_dataset
        assert entry["parameters"] > 0
    if "cnn" in names:
        assert catalogue["architectures"][names.index("cnn")]["parameters"] == 93_322
    mnist = next(d for d in catalogue["datasets"] if d["name"] == "mnist")
    assert mnist["kind"] == "image" and mnist["shape"] == [1, 28, 28] and mnist["classes"] == 10


def test_list_table(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "Architectures" in out and "Datasets" in out and "mnist" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["summary", "no_such_arch"], ["unknown architecture 'no_such_arch'", "known"]),
        (["summary", "cnn", "--dataset", "no_such_set"], ["unknown dataset", "mnist"]),
        (["summary", "cnn", "--set", "kernel_size=99"], ["kernel_size=99", "from"]),
        (["summary", "cnn", "--set", "kernel_size=abc"], ["kernel_size", "integer"]),
        (["summary", "cnn", "--set", "kernel_size"], ["key=value"]),
        (["summary", "cnn", "--set", "no_such_field=1"], ["no_such_field", "known field"]),
        (["summary", "cnn", "--dataset", "moons"], ["dataset='moons'", "image"]),
        (["summary", "lstm", "--dataset", "mnist"], ["dataset='mnist'", "sequence or tokens"]),
        (["summary", "cnn", "--set", "kernel_size=11"], ["kernel_size=11", "at most 9", "9x9"]),
        (["summary", "cnn", "--set", "pooled_blocks=5"], ["pooled_blocks=5", "at most 3"]),
        (["summary", "cnn", "--dataset", "digits"], ["pooled_blocks=2", "at most 1", "0 pixels"]),
        (["summary", "conv_vae", "--set", "latent_dim=0"], ["latent_dim=0", "from 2"]),
        (["summary", "mlp", "--set", "hidden_sizes=0"], ["hidden_sizes", "from 1"]),
        (["summary", "torchvision:no_such_net"], ["unknown torchvision model", "resnet18"]),
        (["summary", "cnn", "--format", "xml"], ["invalid choice", "xml"]),
        (["no_such_command"], ["invalid choice"]),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, argv, words):
    if "cnn" in argv and "cnn" not in list_archs():
        pytest.skip("the cnn family is not registered")
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    for word in words:
        assert word in err


@needs_cnn
def test_bad_value_names_the_allowed_range(capsys):
    allowed = next(s for s in get_arch("cnn").fields() if s.name == "kernel_size").allowed()
    _, _, err = run(capsys, "summary", "cnn", "--set", "kernel_size=0")
    assert allowed in err


def test_extension_commands_are_added_and_their_errors_wrapped(capsys, monkeypatch):
    def refuse(args) -> int:
        raise ConfigError("lr", 5.0, "0 to 1")

    def add_commands(subparsers):
        subparsers.add_parser("hello").set_defaults(func=lambda args: 0)
        subparsers.add_parser("fail").set_defaults(func=refuse)

    fake = types.ModuleType("deeparch.cli.hello")
    fake.add_commands = add_commands
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", (*cli_main.COMMAND_MODULES, fake))
    assert run(capsys, "hello") == (0, "", "")
    code, out, err = run(capsys, "fail")
    assert code == 2 and out == ""
    assert err == "deeparch: error: lr=5.0 is not allowed: 0 to 1\n"


@needs_cnn
def test_python_dash_m_summary_reports_chollets_convnet():
    result = subprocess.run(
        [sys.executable, "-m", "deeparch", "summary", "cnn", "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total_params"] == 93_322


def test_part_line_shows_vae_encoder_and_decoder_and_skips_empty_parts(capsys):
    code, out, _ = run(capsys, "summary", "vae")
    assert code == 0
    # 784-400-20: encoder 784x400+400 plus the mu and logvar heads 2x(400x20+20); decoder mirrored.
    encoder = 784 * 400 + 400 + 2 * (400 * 20 + 20)
    decoder = 20 * 400 + 400 + 400 * 784 + 784
    assert f"parameters per part: encoder {encoder:,}; decoder {decoder:,}\n" in out
    assert f"total parameters: {encoder + decoder:,} " in out
    _, out, _ = run(capsys, "summary", "mlp")
    assert "parameters per part: layers 512,800; output 1,010\n" in out  # no "flatten 0"
