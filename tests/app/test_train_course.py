"""Train's course views under AppTest: the freeze picker, datasets that need files, the decision
regions and the per-layer histograms of a run."""

import json

from tests.app.test_pages import inspect_count, metric, open_page, run_until


def plotly_specs(at):
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_a_dataset_without_its_files_is_marked_and_start_waits(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPARCH_DATA_DIR", str(tmp_path))
    at = open_page("pages/train.py")
    at.selectbox(key="train_dataset_mlp").set_value("kmnist").run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "kmnist is not available yet" in warnings and "KMNIST" in warnings
    assert at.button(key="train_start").disabled
    at.selectbox(key="train_dataset_mlp").set_value("mnist").run()
    assert not at.button(key="train_start").disabled


def test_freezing_a_part_trains_the_rest_and_shows_the_regions_of_moons():
    at = open_page("pages/train.py")
    at.selectbox(key="train_dataset_mlp").set_value("moons").run()
    at.text_input(key="train_mlp_hidden_sizes").set_value("8,8").run()
    picker = at.multiselect(key="train_freeze_mlp")
    assert len(picker.options) == 2  # the MLP's layers and output
    picker.set_value(["layers"]).run()
    # 2 inputs -> 8 -> 8 -> 2 classes: layers hold 24 + 72 parameters, output 18.
    assert "Training 18 of 114 parameters." in [c.value for c in at.caption]
    at.number_input(key="train_cfg_max_steps").set_value(12).run()
    at.number_input(key="train_cfg_snapshot_every").set_value(6).run()
    at.button(key="train_start").click().run()
    assert not at.exception
    run_until(at, lambda a: metric(a, "state") in ("finished", "stopped", "failed"))
    assert metric(at, "state") == "finished"
    titles = [spec["layout"]["title"]["text"] for spec in plotly_specs(at)]
    assert "Decision regions at step 12" in titles
    at.toggle(key="train_layer_stats").set_value(True).run()
    titles = [spec["layout"]["title"]["text"] for spec in plotly_specs(at)]
    assert "Gradient norm per layer" in titles
    assert any(title.endswith("weights over time") for title in titles)


def test_inspect_counts_a_frozen_part_as_not_trainable():
    at = open_page("pages/inspect.py")
    at.selectbox(key="inspect_arch").set_value("cnn").run()
    assert inspect_count(at, "trainable") == inspect_count(at, "parameters") == "93,322"
    at.multiselect(key="inspect_freeze_cnn").set_value(["features"]).run()
    assert not at.exception
    assert inspect_count(at, "parameters") == "93,322"
    assert inspect_count(at, "trainable") == "37,578"  # the classifier alone (features: 55,744)
    assert "trainable" in at.dataframe[0].value.columns
