"""The five exploration pages under AppTest, each on a short real training run of its kind."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from deeparch.data.catalogue import load_dataset
from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import get_manager
from deeparch.explore.latent import encode_means

APP = str(Path(__file__).resolve().parents[2] / "app.py")
OWNER_KEY = "deeparch_owner"  # pages/_shared.py keeps the session's owner id under this key


def trained_job(owner: str, **fields):
    """A short finished run of the given TrainConfig fields, owned by `owner`."""
    config = TrainConfig(**{"batch_size": 32, "snapshot_every": 5, **fields})
    job = get_manager().submit(config, owner=owner)
    assert job.wait(180), "the short training run did not finish"
    assert job.state == "finished", job.reason
    return job


def open_page(page: str, owner: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[OWNER_KEY] = owner
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def server_path(at: AppTest, prefix: str) -> AppTest:
    """The page with its browser components off: the server-drawn fallback, widget by widget."""
    at.toggle(key=f"{prefix}_instant").set_value(False).run()
    assert not at.exception, at.exception
    return at


def chart(at: AppTest, key: str) -> dict:
    """The plotly figure (as JSON) of the chart with this widget key."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(f"-{key}"):
            return json.loads(element.proto.spec)
    raise AssertionError(
        f"no chart {key!r}; charts: {[e.proto.id for e in at.get('plotly_chart')]}"
    )


def new_owner() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    "page,arch",
    [
        ("pages/features.py", "cnn"),
        ("pages/latent.py", "vae"),
        ("pages/gan_studio.py", "cgan"),
        ("pages/sequences.py", "lstm"),
        ("pages/autoencoders.py", "denoising_autoencoder"),
    ],
)
def test_empty_session_offers_to_start_a_suitable_model(page, arch):
    owner = new_owner()
    at = open_page(page, owner)
    assert any("Nothing of that kind" in info.value for info in at.info)
    start = next(b for b in at.button if b.key.endswith("_start"))
    assert arch in start.label
    start.click().run()
    jobs = get_manager().jobs(owner=owner)
    assert [job.arch for job in jobs] == [arch]
    jobs[0].stop()
    jobs[0].wait(60)


def test_latent_slider_redecodes_only_the_single_image():
    owner = new_owner()
    trained_job(owner, arch="vae", dataset="mnist", arch_config={"latent_dim": 2}, max_steps=10)
    at = server_path(open_page("pages/latent.py", owner), "lat")
    grid, decoded, scatter = (
        chart(at, "lat_grid"),
        chart(at, "lat_decoded"),
        chart(at, "lat_scatter"),
    )
    assert len(scatter["data"]) == 11  # ten digit classes and the marker of the decoded z
    # The sliders start at the median validation mean (z = 0 can lie outside the data).
    job = get_manager().jobs(owner=owner)[0]
    means = encode_means(job.model_copy(), load_dataset("mnist").x_val[:1000])
    z2 = at.slider(key="lat_z2").value
    start = (at.slider(key="lat_z1").value, z2)
    np.testing.assert_allclose(start, np.round(np.median(means, axis=0) / 0.05) * 0.05, atol=1e-6)
    at.slider(key="lat_z1").set_value(1.5).run()
    assert not at.exception
    assert chart(at, "lat_grid") == grid  # the grid is not recomputed
    assert chart(at, "lat_decoded")["data"] != decoded["data"]
    marker = chart(at, "lat_scatter")["data"][-1]
    assert marker["x"] == [1.5] and marker["y"] == pytest.approx([z2])
    at.slider(key="lat_side").set_value(6).run()
    assert chart(at, "lat_grid")["data"] != grid["data"]
    strip = chart(at, "lat_mix")
    at.slider(key="lat_lambda").set_value(1.0).run()
    assert chart(at, "lat_mix")["data"] != strip["data"]


def test_larger_latent_gets_a_slider_per_dimension_and_a_pca_scatter():
    owner = new_owner()
    job_id = trained_job(
        owner, arch="vae", dataset="mnist", arch_config={"latent_dim": 4}, max_steps=5
    ).id
    at = server_path(open_page("pages/latent.py", owner), "lat")
    assert [s.key for s in at.slider if s.key.startswith("lat_z")] == [
        f"lat_z{i}" for i in range(1, 5)
    ]
    assert chart(at, "lat_scatter")["layout"]["xaxis"]["title"]["text"].startswith("PC1")
    decoded = chart(at, "lat_decoded")
    at.slider(key="lat_z3").set_value(-2.0).run()
    assert chart(at, "lat_decoded")["data"] != decoded["data"]
    # "Sliders to its mean" puts every slider at the chosen validation image's latent mean.
    at.number_input(key="lat_start_index").set_value(3).run()
    at.button(key="lat_to_mean").click().run()
    assert not at.exception, at.exception
    data = load_dataset("mnist")
    means = encode_means(get_manager().get(job_id).model_copy(), data.x_val[3:4])[0]
    bound = at.slider(key="lat_z1").max
    assert (at.slider(key="lat_z1").min, bound) == (-4.0, 4.0)  # fixed: see Z_BOUND
    sliders = [at.slider(key=f"lat_z{i}").value for i in range(1, 5)]
    assert sliders == pytest.approx(np.clip(np.round(means, 2), -bound, bound), abs=1e-6)


def test_feature_maps_page_shows_every_conv_layer_and_the_prediction():
    owner = new_owner()
    trained_job(owner, arch="cnn", dataset="mnist", max_steps=5)
    at = open_page("pages/features.py", owner)
    assert [tab.label for tab in at.tabs] == ["features.conv1", "features.conv2", "features.conv3"]
    probabilities = chart(at, "feat_probs")
    assert len(probabilities["data"][0]["x"]) == 10
    at.number_input(key="feat_index").set_value(7).run()
    assert chart(at, "feat_probs")["data"] != probabilities["data"]
    enlarged = chart(at, "feat_enlarged")
    at.selectbox(key="feat_layer").set_value("features.conv2").run()
    assert chart(at, "feat_enlarged")["layout"]["title"]["text"] == "features.conv2, channel 0"
    assert chart(at, "feat_enlarged")["data"] != enlarged["data"]


def test_conditional_gan_class_choice_changes_the_samples():
    owner = new_owner()
    trained_job(owner, arch="cgan", dataset="mnist", max_steps=10)
    at = server_path(open_page("pages/gan_studio.py", owner), "gan")
    assert chart(at, "gan_verdicts")["layout"]["shapes"][0]["y0"] == 0.5  # the 0.5 line
    assert {t["name"] for t in chart(at, "gan_losses")["data"]} == {
        "discriminator loss",
        "generator loss",
    }
    assert at.select_slider(key="gan_time").options == ["5", "latest"]  # the newest: its label
    threes = chart(at, "gan_class_samples")
    at.selectbox(key="gan_class").set_value(3).run()
    assert chart(at, "gan_class_samples")["data"] != threes["data"]
    old_grid = chart(at, "gan_grid")
    at.select_slider(key="gan_time").set_value(5).run()
    assert chart(at, "gan_grid")["data"] != old_grid["data"]


def test_sequence_page_compares_cells_and_measures_speed():
    owner = new_owner()
    trained_job(owner, arch="gru", dataset="mnist_rows", max_steps=5)
    at = open_page("pages/sequences.py", owner)
    hidden = chart(at, "seq_hidden")
    assert hidden["data"][0]["z"]["shape"].replace(" ", "") == "64,28"  # (H, T) of the gru
    at.number_input(key="seq_index").set_value(3).run()
    assert chart(at, "seq_hidden")["data"] != hidden["data"]
    at.selectbox(key="seq_dataset").set_value("mnist_rows").run()
    at.multiselect(key="seq_cells").set_value(["rnn (tanh)", "lstm"]).run()
    at.button(key="seq_compare").click().run()
    assert [t["name"] for t in chart(at, "seq_grads")["data"]] == ["rnn (tanh)", "lstm"]
    at.selectbox(key="seq_speed_data").set_value("mnist_rows").run()
    at.slider(key="seq_speed_steps").set_value(5).run()
    at.button(key="seq_measure").click().run()
    assert not at.exception
    bars = chart(at, "seq_speed")["data"][0]
    assert bars["x"] == ["rnn (tanh)", "rnn (relu)", "lstm", "gru", "qrnn", "tcn"]


def test_autoencoder_page_shows_noisy_input_output_target_and_pca_comparison():
    owner = new_owner()
    job = trained_job(owner, arch="denoising_autoencoder", dataset="mnist", max_steps=10)
    at = open_page("pages/autoencoders.py", owner)
    code_size = job.model_copy().code_size
    assert any(f"a code of {code_size} numbers for 784 pixels" in c.value for c in at.caption)
    for row in ("input with noise", "output", "clean target"):
        assert chart(at, f"ae_row_{row}")["layout"]["title"]["text"].startswith(row)
    at.slider(key="ae_code_size").set_value(4).run()
    at.select_slider(key="ae_steps").set_value(100).run()
    at.button(key="ae_compare").click().run()
    assert not at.exception
    errors = chart(at, "ae_errors")["data"][0]
    assert errors["x"] == ["PCA", "linear autoencoder", "nonlinear autoencoder"]
    assert "code size 4" in chart(at, "ae_errors")["layout"]["title"]["text"]


@pytest.mark.parametrize("skips", [True, False])
def test_autoencoder_page_shows_a_unet_denoiser(skips):
    owner = new_owner()
    job = trained_job(owner, arch="unet2d", dataset="mnist", max_steps=10,
                      arch_config={"skip_connections": skips})  # fmt: skip
    at = open_page("pages/autoencoders.py", owner)
    caption = next(c.value for c in at.caption if c.value.startswith("unet2d:"))
    assert ("skip connections hand" in caption) is skips
    last = [s for s in job.snapshot()["snapshots"] if "reconstructions" in s][-1]
    for row in ("input with noise", "output", "clean target"):
        figure = chart(at, f"ae_row_{row}")
        assert figure["layout"]["title"]["text"] == f"{row} (step {last['step']})"
    assert not np.array_equal(last["inputs"], last["originals"])  # the noise is visible


def test_a_loaded_checkpoint_is_explored_like_a_run(tmp_path):
    job = trained_job(new_owner(), arch="vae", dataset="mnist", arch_config={"latent_dim": 2},
                      max_steps=5)  # fmt: skip
    path = job.save_checkpoint(tmp_path / "vae2d")
    owner = new_owner()
    loaded = get_manager().load_checkpoint(path, owner=owner)
    at = server_path(open_page("pages/latent.py", owner), "lat")
    assert any(loaded.id in caption.value for caption in at.caption)
    decoded = chart(at, "lat_decoded")
    at.slider(key="lat_z2").set_value(-1.0).run()
    assert chart(at, "lat_decoded")["data"] != decoded["data"]


# ---- autoencoder comparison bounds (lead)
def test_comparison_code_size_stays_below_the_input_size():
    at = open_page("pages/autoencoders.py", new_owner())
    at.slider(key="ae_code_size").set_value(64).run()
    at.selectbox(key="ae_dataset").set_value("digits").run()
    assert not at.exception
    assert at.slider(key="ae_code_size").value == 63  # digits are 8x8 = 64 values
    assert at.slider(key="ae_code_size").max == 63


# ---- latent page fixes
def test_latent_grid_range_follows_the_means_until_the_student_sets_it():
    from deeparch.explore.latent import grid_range

    owner = new_owner()
    job = trained_job(owner, arch="vae", dataset="mnist", arch_config={"latent_dim": 2},
                      max_steps=10)  # fmt: skip
    at = server_path(open_page("pages/latent.py", owner), "lat")
    assert at.subheader[0].value == "The 2-D latent space"
    data = load_dataset("mnist")
    means = encode_means(job.model_copy(), data.x_val[:1000])
    z1_range, z2_range = grid_range(means)
    assert at.slider(key="lat_range_z1").value == z1_range
    assert at.slider(key="lat_range_z2").value == z2_range
    grid = chart(at, "lat_grid")
    layout = grid["layout"]
    assert (layout["xaxis"]["title"]["text"], layout["yaxis"]["title"]["text"]) == ("z1", "z2")
    assert f"z1 {z1_range[0]:g} to {z1_range[1]:g}" in layout["title"]["text"]
    # The first cell's centre pixel sits at (z1 low, z2 low), as the scatter's axes count.
    heatmap = grid["data"][0]
    assert heatmap["x0"] + 13.5 * heatmap["dx"] == pytest.approx(z1_range[0])
    assert heatmap["y0"] + 13.5 * heatmap["dy"] == pytest.approx(z2_range[0])
    scatter = chart(at, "lat_scatter")
    colours = [trace["marker"]["color"] for trace in scatter["data"][:10]]
    assert len(set(colours)) == 10  # set on the traces, so Streamlit's theme keeps them
    (box,) = scatter["layout"]["shapes"]
    assert (box["x0"], box["x1"], box["y0"], box["y1"]) == (*z1_range, *z2_range)
    # Following the data the ranges are set by the page; unticked they are the student's and
    # stay through other changes; ticked again, the data's come back.
    assert at.slider(key="lat_range_z1").disabled
    at.checkbox(key="lat_range_follow").uncheck().run()
    assert not at.slider(key="lat_range_z1").disabled
    at.slider(key="lat_range_z1").set_value((-1.0, 1.0)).run()
    assert "z1 -1 to 1," in chart(at, "lat_grid")["layout"]["title"]["text"]
    at.slider(key="lat_z1").set_value(0.5).run()
    assert at.slider(key="lat_range_z1").value == (-1.0, 1.0)
    at.checkbox(key="lat_range_follow").check().run()
    assert at.slider(key="lat_range_z1").value == z1_range
    # The interpolation strip shows both originals, framed and labelled.
    strip = chart(at, "lat_strip")["layout"]
    texts = [note["text"] for note in strip["annotations"]]
    assert (texts[0], texts[-1]) == (f"#0: {int(data.y_val[0])}", f"#1: {int(data.y_val[1])}")
    assert len(texts) == 10 + 2 and len(strip["shapes"]) == 2
    assert not at.exception


# ---- sequences fixes
def plotly_values(values) -> np.ndarray:
    """A trace's x/y/z as numbers, whether plotly wrote a list or base64 binary data."""
    if isinstance(values, dict) and "bdata" in values:
        import base64

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=np.float64)


def test_sequence_job_gradient_is_the_chosen_examples():
    from deeparch.explore.sequences import gradient_norm_per_step

    owner = new_owner()
    job = trained_job(owner, arch="gru", dataset="mnist_rows", max_steps=5)
    at = open_page("pages/sequences.py", owner)
    data = load_dataset("mnist_rows")
    model = job.model_copy()
    for index in (0, 3):
        at.number_input(key="seq_index").set_value(index).run()
        figure = chart(at, "seq_job_grads")
        assert figure["layout"]["title"]["text"] == f"gradient reaching each step, example #{index}"
        expected = gradient_norm_per_step(
            model, data.x_val[index : index + 1], data.y_val[index : index + 1]
        )
        np.testing.assert_allclose(plotly_values(figure["data"][0]["y"]), expected, rtol=1e-4)


def test_sequence_comparison_offers_remember_first_and_the_forget_bias():
    at = open_page("pages/sequences.py", new_owner())
    assert at.selectbox(key="seq_dataset").value == "remember_first"
    assert "lstm (forget bias 1)" in at.multiselect(key="seq_cells").value
    assert "qrnn" not in at.multiselect(key="seq_cells").value  # slowest: chosen by hand
    at.multiselect(key="seq_cells").set_value(["lstm", "lstm (forget bias 1)"]).run()
    at.button(key="seq_compare").click().run()
    assert not at.exception, at.exception
    figure = chart(at, "seq_grads")
    assert [t["name"] for t in figure["data"]] == ["lstm", "lstm (forget bias 1)"]
    assert figure["layout"]["title"]["text"] == ("remember the first value, after 0 training steps")
    first_step = [plotly_values(t["y"])[0] for t in figure["data"]]
    assert first_step[1] > 1e3 * first_step[0]  # forget gate 0.73 instead of 0.5, 39 times
    caption = next(c.value for c in at.caption if c.value.startswith("Validation accuracy"))
    assert caption.startswith("Validation accuracy after 0 training steps (guessing the most ")
    assert "mean over 64 validation examples" in caption


# ---- features and GAN fixes
def test_feature_maps_are_drawn_signed_and_titled_before_the_activation():
    owner = new_owner()
    trained_job(owner, arch="cnn", dataset="mnist", max_steps=5)
    at = open_page("pages/features.py", owner)
    assert [h.value for h in at.subheader if "conv layer" in h.value] == [
        "Output of every conv layer, before its activation"
    ]
    assert any("before the batch norm or activation function" in c.value for c in at.caption)
    maps = chart(at, "feat_maps_features.conv1")
    assert maps["layout"]["title"]["text"] == (
        "features.conv1 before its activation: 32 maps of 26x26"
    )
    heatmap = maps["data"][0]
    # Zero is the middle of a red/blue scale with a colour bar, not a grey shade.
    assert (heatmap["zmin"], heatmap["zmax"], heatmap["showscale"]) == (-1.0, 1.0, True)
    assert heatmap["colorscale"][0][1] != heatmap["colorscale"][-1][1]
    assert heatmap["colorbar"]["ticktext"] == ["most negative", "0", "most positive"]
    enlarged = chart(at, "feat_enlarged")["data"][0]
    assert enlarged["zmin"] == -enlarged["zmax"] < 0


def test_gan_studio_says_which_weights_each_view_uses_and_labels_the_cgan_grid():
    owner = new_owner()
    trained_job(owner, arch="cgan", dataset="mnist", max_steps=10)
    at = server_path(open_page("pages/gan_studio.py", owner), "gan")
    grid = chart(at, "gan_grid")
    assert grid["layout"]["xaxis"]["ticktext"] == [str(i) for i in range(10)]  # one class a column
    assert grid["layout"]["xaxis"]["title"]["text"] == "class the generator was asked for"
    at.select_slider(key="gan_time").set_value(5).run()
    assert chart(at, "gan_class_samples")["layout"]["title"]["text"] == (
        "16 samples of class 0 (latest weights, step 10)"
    )
    walk = chart(at, "gan_walk")["layout"]["title"]["text"]
    assert walk.endswith("(latest weights, step 10)")
    assert any("the time slider does not move them" in c.value for c in at.caption)


def test_unconditional_gan_grid_keeps_eight_unlabelled_columns():
    owner = new_owner()
    trained_job(owner, arch="mlp_gan", dataset="mnist", max_steps=5)
    at = server_path(open_page("pages/gan_studio.py", owner), "gan")
    assert chart(at, "gan_grid")["layout"]["xaxis"]["visible"] is False
    assert "latest weights, step 5" in chart(at, "gan_walk")["layout"]["title"]["text"]
