"""The Train page's results (AppTest): final and best metrics as numbers, the confusion matrix and
a cell's examples, all read from the job's own metrics log and snapshot."""

import base64
import json

import numpy as np
import pytest

from deeparch.data import load_dataset
from deeparch.engine.manager import get_manager
from deeparch.figures import classification
from deeparch.figures.classification import most_confused_cell
from tests.app.test_pages import metric, open_page, run_until
from tests.explore.pictures import png


def chart_spec(at, key: str) -> dict:
    return json.loads(
        next(c.proto.spec for c in at.get("plotly_chart") if c.proto.id.endswith(key))
    )


def decoded(values) -> np.ndarray:
    """A trace's array, whether plotly wrote a list or base64 binary data with its shape."""
    if isinstance(values, dict) and "bdata" in values:
        flat = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        shape = [int(n) for n in str(values.get("shape", len(flat))).split(",")]
        return flat.reshape(shape)
    return np.asarray(values)


def train_on_page(arch: str, settings: dict, epochs: int):
    at = open_page("pages/train.py", {"arch": arch})
    at.switch_page("pages/train.py").run()
    for key, value in settings.items():
        at.text_input(key=key).set_value(value).run()
    at.number_input(key="train_cfg_epochs").set_value(epochs).run()
    at.button(key="train_start").click().run()
    run_until(at, lambda a: metric(a, "state") in ("finished", "stopped", "failed"), 240)
    assert metric(at, "state") == "finished"
    job = get_manager().get(at.session_state["deeparch_current_job"])
    return at, job


def test_train_shows_the_final_and_best_accuracy_and_the_confusion_matrix(monkeypatch):
    at, job = train_on_page("mlp", {"train_mlp_hidden_sizes": "16"}, epochs=3)
    rows = job.snapshot()["epoch_metrics"]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    accuracies = [row["val_accuracy"] for row in rows]
    best = int(np.argmax(accuracies))  # the earliest of equal ones, as the summary picks
    assert metric(at, "final validation accuracy") == f"{accuracies[-1]:.1%}"
    assert metric(at, "validation accuracy, best epoch") == f"{accuracies[best]:.1%}"
    assert metric(at, "final validation loss") == f"{rows[-1]['val_loss']:.4g}"
    assert metric(at, "validation loss, best epoch") == f"{rows[best]['val_loss']:.4g}"
    heading = next(m.value for m in at.markdown if m.value.startswith("**Results**"))
    assert heading == (f"**Results** after epoch 3; best epoch {best + 1} (by validation accuracy)")

    # The confusion matrix of the last snapshot, and the examples of its most confused cell.
    payload = job.latest_snapshot()
    confusion = payload["confusion"]
    heatmap = chart_spec(at, "train_confusion_chart")["data"][0]
    np.testing.assert_array_equal(decoded(heatmap["text"]), confusion)  # counts per cell
    assert confusion.sum() == 500  # the snapshot's validation samples
    assert np.trace(confusion) / 500 == pytest.approx(payload["val_accuracy"])
    true_class, predicted = most_confused_cell(confusion)
    count = int(confusion[true_class, predicted])
    caption = f"true {true_class}, predicted {predicted}: {count} of the 500 validation examples"
    assert any(c.value.startswith(caption) for c in at.caption), [c.value for c in at.caption]
    x_val = load_dataset("mnist").x_val
    indices = payload["cell_examples"][true_class, predicted]
    shown = indices[indices >= 0]
    assert len(shown) == min(count, 8)
    # every example shown is one the model put in that cell
    with_model = job.model_copy()(x_val[shown]).argmax(dim=1).numpy()
    np.testing.assert_array_equal(with_model, predicted)
    np.testing.assert_array_equal(load_dataset("mnist").y_val[shown].numpy(), true_class)
    examples = chart_spec(at, "train_cell_examples")["data"][0]
    # one row of 28x28 images with a pixel between them
    assert decoded(examples["z"]).shape == (28, len(shown) * 29 - 1)

    # Built once per snapshot and cell: refreshes draw the kept figures (the live panel of a
    # class refreshes every few seconds while the matrix changes once an epoch).
    builds = []
    build = classification.confusion_figure
    monkeypatch.setattr(
        classification, "confusion_figure", lambda *a, **k: builds.append(a) or build(*a, **k)
    )
    shown_before = chart_spec(at, "train_confusion_chart")
    at.run()
    at.run()
    assert builds == []
    assert chart_spec(at, "train_confusion_chart") == shown_before

    # The cell a student clicked (kept in the session) is the one shown after a refresh.
    at.session_state[f"train_cell_{job.id}"] = (true_class, true_class)
    at.run()
    assert len(builds) == 1  # a new cell: the matrix drawn again, with that cell marked
    diagonal = int(confusion[true_class, true_class])
    caption = f"true {true_class}, predicted {true_class}: {diagonal} of the 500"
    assert any(c.value.startswith(caption) for c in at.caption), [c.value for c in at.caption]


@pytest.mark.parametrize(
    "arch, finals",
    [
        ("autoencoder", ["final reconstruction error", "final validation loss"]),
        ("vae", ["final reconstruction error", "final KL divergence", "final validation loss"]),
    ],
)
def test_train_shows_reconstruction_error_and_kl_as_numbers(arch, finals):
    at, job = train_on_page(arch, {}, epochs=1)
    final = job.snapshot()["epoch_metrics"][-1]
    names = {"reconstruction error": "val_reconstruction", "KL divergence": "val_kl",
             "validation loss": "val_loss"}  # fmt: skip
    for label in finals:
        assert metric(at, label) == f"{final[names[label.removeprefix('final ')]]:.4g}"
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("confusion_chart")]


def test_compare_names_runs_by_what_differs_and_marks_a_loaded_checkpoint(tmp_path):
    from deeparch.checkpoint import archive

    at = open_page("pages/train.py")
    at.text_input(key="train_mlp_hidden_sizes").set_value("16").run()
    at.number_input(key="train_cfg_max_steps").set_value(20).run()
    job_ids = []
    for lr in (0.01, 0.001):
        at.number_input(key="train_cfg_lr").set_value(lr).run()
        at.button(key="train_start").click().run()
        job_ids.append(at.session_state["deeparch_current_job"])
        run_until(at, lambda a: metric(a, "state") == "finished")
    first = get_manager().get(job_ids[0])
    packed = archive.pack(first.save_checkpoint(tmp_path / "first"))
    at.file_uploader(key="train_upload").upload("first.zip", packed, "application/zip").run()
    assert any(s.value.startswith("Loaded mlp") for s in at.success), [e.value for e in at.error]

    at.switch_page("pages/compare.py").run()
    assert not at.exception
    runs = at.multiselect(key="compare_runs")
    assert len(runs.value) == 3  # newest first: the loaded checkpoint, the second run, the first
    # The loaded copy has the first run's settings: the two are told apart by their ids.
    loaded_id = runs.value[0]
    assert runs.value[1:] == job_ids[::-1]
    assert runs.options == [
        f"lr 0.01 · {loaded_id[-6:]} (loaded)",
        "lr 0.001",
        f"lr 0.01 · {job_ids[0][-6:]}",
    ]
    legend = [trace["name"] for trace in chart_spec(at, "compare_loss_chart")["data"]]
    assert legend == runs.options
    assert "All of them: mlp on mnist; each is named by what it changes." in [
        c.value for c in at.caption
    ]
    runs.set_value(job_ids).run()  # only the two trained runs: named by lr alone
    legend = [trace["name"] for trace in chart_spec(at, "compare_loss_chart")["data"]]
    assert legend == ["lr 0.01", "lr 0.001"]
    assert list(at.dataframe[0].value.columns) == ["lr 0.01", "lr 0.001"]


def test_feature_maps_caution_on_a_noise_upload_and_not_on_a_real_digit():
    from tests.app.test_explore_pages import new_owner, trained_job
    from tests.app.test_explore_pages import open_page as open_as

    owner = new_owner()
    trained_job(owner, arch="cnn", dataset="mnist", max_steps=20, batch_size=64, snapshot_every=20)
    at = open_as("pages/features.py", owner)
    at.radio(key="feat_source").set_value("upload a picture").run()

    def upload(pixels):
        at.file_uploader(key="feat_upload").upload("picture.png", png(pixels), "image/png")
        at.run()
        assert not at.exception, at.exception
        return [w.value for w in at.warning]

    rng = np.random.default_rng(0)
    warnings = upload(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert warnings[0].startswith(
        "**This input is unlike the training data**, so the prediction below may mean nothing: "
        "bright pixels 0.000, where training images have"
    ), warnings
    title = chart_spec(at, "feat_probs")["layout"]["title"]["text"]
    assert title.startswith("prediction: ") and title.endswith(" · unlike the training data")

    digit = (load_dataset("mnist").x_val[0, 0].numpy() * 255).round().astype(np.uint8)
    assert upload(digit) == []
    assert "unlike" not in chart_spec(at, "feat_probs")["layout"]["title"]["text"]
