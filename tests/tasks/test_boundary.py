"""The decision regions of 2-D point classifiers: the grid is the model's own predictions."""

import dataclasses

import numpy as np
import pytest
import torch

from deeparch.data import dataset_info, list_datasets
from deeparch.engine.callbacks import default_callbacks
from deeparch.engine.config import TrainConfig
from deeparch.engine.loop import Trainer
from deeparch.engine.metrics_log import MetricsLog
from deeparch.engine.prepare import prepare
from deeparch.errors import ConfigError
from deeparch.models import get_arch
from deeparch.models.registry import compatible_datasets

POINT_SETS = [name for name in list_datasets() if dataset_info(name).kind == "points"]
POINT_ARCHS = ["logistic_regression", "softmax_regression", "mlp"]


class AlwaysGo:
    stop_reason = ""

    def between_steps(self, step):
        return True, 0.0


def test_the_course_point_sets_exist():
    assert {"moons", "circles", "spirals", "xor", "blobs"} <= set(POINT_SETS)


@pytest.mark.parametrize("dataset", POINT_SETS)
@pytest.mark.parametrize("arch", POINT_ARCHS)
def test_the_grid_equals_the_model_predictions_at_its_points(arch, dataset):
    if dataset not in compatible_datasets(get_arch(arch)):
        pytest.skip(f"{arch} does not train on {dataset}")
    config = TrainConfig(
        arch=arch, dataset=dataset, batch_size=32, epochs=5, max_steps=6, snapshot_every=3
    )
    if arch == "mlp":
        config = dataclasses.replace(config, arch_config={"hidden_sizes": (8,)})
    try:
        config.validate()
    except ConfigError as error:  # logistic regression separates two classes, not blobs' three
        pytest.skip(str(error))
    log = MetricsLog()
    trainer = Trainer(prepare(config), AlwaysGo(), default_callbacks(log))
    trainer.run()
    snapshots = log.copy()["snapshots"]
    assert len(snapshots) == 2  # steps 3 and 6: redrawn as it trains
    first, last = snapshots[0]["boundary"], snapshots[-1]["boundary"]
    assert np.array_equal(first["xs"], last["xs"]) and np.array_equal(first["ys"], last["ys"])
    xs, ys, probabilities = last["xs"], last["ys"], last["probabilities"]
    k = dataset_info(dataset).num_classes
    assert probabilities.shape == (len(ys), len(xs), k)
    assert np.allclose(probabilities.sum(axis=2), 1.0, atol=1e-5)
    # Independently: each grid point through the model on its own, in the order (row y, col x).
    model = trainer.model.eval()
    points = torch.tensor([[x, y] for y in ys for x in xs], dtype=torch.float32)
    with torch.no_grad():
        logits = model(points)
    if logits.shape[1] == 1:
        expected = (logits[:, 0] > 0).long().numpy()
    else:
        expected = logits.argmax(dim=1).numpy()
    assert np.array_equal(last["predicted"].flatten(), expected)
    # The grid covers every point shown.
    shown = last["points"]
    assert xs[0] < shown[:, 0].min() and shown[:, 0].max() < xs[-1]
    assert ys[0] < shown[:, 1].min() and shown[:, 1].max() < ys[-1]
    assert len(last["labels"]) == len(shown)


def test_image_classifiers_have_no_boundary():
    config = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, max_steps=1)
    prepared = prepare(config)
    assert "boundary" not in prepared.task.snapshot(prepared.x_val[:20], prepared.y_val[:20])
