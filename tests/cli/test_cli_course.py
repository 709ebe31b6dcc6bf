"""The course's training flags of `deeparch train` and `deeparch summary --freeze`."""

import json

import pytest

from deeparch.cli import main as cli
from deeparch.cli.train import TRAIN_FLAGS, build_train_config
from deeparch.engine.config import train_field_specs


def parsed(*argv):
    parser = cli.build_parser()
    return parser.parse_args(["train", *argv])


def test_each_course_flag_sets_its_training_field():
    args = parsed(
        "mlp",
        "--lr-schedule", "cosine",
        "--early-stopping", "3",
        "--train-subset", "200",
        "--augment",
        "--freeze", "layers",
    )  # fmt: skip
    config = build_train_config(args)
    assert (config.lr_schedule, config.early_stopping, config.train_subset) == ("cosine", 3, 200)
    assert (config.augment, config.freeze) == (True, "layers")
    assert build_train_config(parsed("vae", "--loss", "l1")).reconstruction_loss == "l1"


def test_every_flag_is_a_training_field():
    fields = {spec.name for spec in train_field_specs()}
    assert set(TRAIN_FLAGS) <= fields


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (("--lr-schedule", "linear"), "lr_schedule"),
        (("--early-stopping", "-1"), "early_stopping"),
        (("--loss", "bce"), "reconstruction_loss"),  # an MLP reconstructs nothing
    ],
)
def test_a_bad_course_flag_names_its_field(capsys, argv, field):
    code = cli.main(["train", "mlp", *argv])
    err = capsys.readouterr().err
    assert code == 2 and field in err


def test_a_flag_and_its_set_together_are_refused(capsys):
    code = cli.main(["train", "mlp", "--augment", "--set", "augment=false"])
    assert code == 2 and "--augment" in capsys.readouterr().err


def test_summary_counts_a_frozen_part_in_the_trainable_column(capsys):
    assert cli.main(["summary", "cnn", "--freeze", "features", "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    frozen = sum(row["params"] for row in summary["layers"] if row["name"].startswith("features"))
    assert summary["trainable_params"] == summary["total_params"] - frozen > 0
    assert cli.main(["summary", "cnn", "--freeze", "features"]) == 0
    out = capsys.readouterr().out
    assert "trainable" in out.splitlines()[1]
