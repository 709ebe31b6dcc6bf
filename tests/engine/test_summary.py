"""A run's summary: final and best metrics picked from its per-epoch rows, per task."""

import math

import pytest

from deeparch.engine.summary import format_epoch, format_metric, summarize_run
from deeparch.tasks import TASK_CLASSES

ROWS = [
    {"epoch": 1, "step": 10, "train_loss": 1.0, "val_loss": 0.50, "val_accuracy": 0.80},
    {"epoch": 2, "step": 20, "train_loss": 0.6, "val_loss": 0.30, "val_accuracy": 0.91},
    {"epoch": 3, "step": 30, "train_loss": 0.4, "val_loss": 0.35, "val_accuracy": 0.88},
]


def test_a_classifier_s_best_epoch_is_its_highest_accuracy():
    summary = summarize_run({"task": "classify", "epoch_metrics": ROWS, "final_metrics": ROWS[-1]})
    assert (summary.final_epoch, summary.best_epoch, summary.best_by) == (3, 2, "val_accuracy")
    accuracy = summary.metric("val_accuracy")
    assert (accuracy.final, accuracy.at_best) == (0.88, 0.91)
    assert (summary.metric("val_loss").final, summary.metric("val_loss").at_best) == (0.35, 0.30)
    assert [m.name for m in summary.metrics] == ["val_accuracy", "val_loss"]


def test_a_vae_s_best_epoch_is_its_lowest_loss_and_it_shows_kl():
    rows = [
        {"epoch": 1, "step": 5, "val_loss": 200.0, "val_reconstruction": 190.0, "val_kl": 10.0},
        {"epoch": 2, "step": 10, "val_loss": 150.0, "val_reconstruction": 135.0, "val_kl": 15.0},
        {"epoch": 3, "step": 15, "val_loss": 160.0, "val_reconstruction": 150.0, "val_kl": 10.0},
    ]
    summary = summarize_run({"task": "vae", "epoch_metrics": rows})
    assert summary.best_epoch == 2
    assert [(m.label, m.final, m.at_best) for m in summary.metrics] == [
        ("reconstruction error", 150.0, 135.0),
        ("KL divergence", 10.0, 15.0),
        ("validation loss", 160.0, 150.0),
    ]


def test_a_gan_has_no_best_epoch():
    rows = [{"epoch": 1, "step": 5, "val_d_x": 0.7, "val_d_g_z": 0.3, "val_d_loss": 1.1}]
    summary = summarize_run({"task": "gan", "epoch_metrics": rows})
    assert summary.best_epoch is None and summary.best_by is None
    assert [(m.name, m.final, m.at_best) for m in summary.metrics] == [
        ("val_d_x", 0.7, None),
        ("val_d_g_z", 0.3, None),
        ("val_d_loss", 1.1, None),
    ]


def test_a_run_stopped_mid_epoch_ends_with_its_last_evaluation():
    stopped = {"epoch": 3.4, "step": 34, "val_loss": 0.2, "val_accuracy": 0.95}
    summary = summarize_run({"task": "classify", "epoch_metrics": ROWS, "final_metrics": stopped})
    assert (summary.final_epoch, summary.best_epoch) == (3.4, 3.4)
    assert format_epoch(summary.final_epoch) == "3.4" and format_epoch(2.0) == "2"


def test_a_diverged_epoch_is_never_best_and_nothing_before_the_first_epoch():
    rows = [*ROWS, {"epoch": 4, "step": 40, "val_loss": math.nan, "val_accuracy": math.nan}]
    summary = summarize_run({"task": "sequence", "epoch_metrics": rows})
    assert summary.best_epoch == 2
    assert summary.metric("val_accuracy").final is None
    assert format_metric("val_accuracy", None) == "—"
    assert summarize_run({"task": "classify", "epoch_metrics": []}) is None


@pytest.mark.parametrize("task", sorted(TASK_CLASSES))
def test_every_task_names_what_its_summary_shows(task):
    task_cls = TASK_CLASSES[task]
    assert task_cls.summary_metrics and all(m.startswith("val_") for m in task_cls.summary_metrics)
    if task_cls.best_by is not None:
        assert task_cls.best_by[0] in task_cls.summary_metrics
        assert task_cls.best_by[1] in ("max", "min")


def test_formats():
    assert format_metric("val_accuracy", 0.9123) == "91.2%"
    assert format_metric("val_loss", 0.123456) == "0.1235"
    assert format_metric("val_kl", 1234.5) == "1234"
