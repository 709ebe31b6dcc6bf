"""The five exploration pages under AppTest, each on a short real training run of its kind."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from deeparch.data import load_dataset
from deeparch.explore_latent import encode_means
from deeparch.training import TrainConfig, get_manager

APP = str(Path(__file__).resolve().parent.parent / "app.py")
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
    at = open_page("pages/latent.py", owner)
    grid, decoded, scatter = (
        chart(at, "lat_grid"),
        chart(at, "lat_decoded"),
        chart(at, "lat_scatter"),
    )
    assert len(scatter["data"]) == 11  # ten digit classes and the marker of the decoded z
    at.slider(key="lat_z1").set_value(1.5).run()
    assert not at.exception
    assert chart(at, "lat_grid") == grid  # the grid is not recomputed
    assert chart(at, "lat_decoded")["data"] != decoded["data"]
    marker = chart(at, "lat_scatter")["data"][-1]
    assert (marker["x"], marker["y"]) == ([1.5], [0.0])
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
    at = open_page("pages/latent.py", owner)
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
    at = open_page("pages/gan_studio.py", owner)
    assert chart(at, "gan_verdicts")["layout"]["shapes"][0]["y0"] == 0.5  # the 0.5 line
    assert {t["name"] for t in chart(at, "gan_losses")["data"]} == {
        "discriminator loss",
        "generator loss",
    }
    assert at.select_slider(key="gan_time").options == ["5", "10"]
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
    at = open_page("pages/latent.py", owner)
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
