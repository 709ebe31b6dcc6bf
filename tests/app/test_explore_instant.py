"""The latent and GAN pages' browser components under AppTest: what each one is sent.

AppTest runs no JavaScript, so these check the payloads (against the job's own model), what a
release leaves on the server and how the server-drawn fallback and the component share a point.
"""

from __future__ import annotations

import numpy as np
import pytest

from deeparch.data.catalogue import load_dataset
from deeparch.explore import latent
from deeparch.explore.payload import to_uint8, unpack
from tests.app.test_explore_pages import chart, new_owner, open_page, trained_job


def component(at, key: str):
    for element in at.main:
        if getattr(element, "type", "") == "bidi_component" and element.proto.id.endswith(key):
            return element.proto
    raise AssertionError(f"no component {key!r}")


def packs(at, key: str):
    """(session header, shared header, shared arrays, shared bytes) of a component's data."""
    blob = component(at, key).bytes
    (session, _), (header, arrays) = unpack(blob)
    return session, header, arrays, blob[blob.index(b"DAP1", 4) :]


def charts(at) -> list[str]:
    return [c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")]


@pytest.fixture(scope="module")
def vae_2d():
    owner = new_owner()
    job = trained_job(owner, arch="vae", dataset="mnist", arch_config={"latent_dim": 2},
                      max_steps=10)  # fmt: skip
    return owner, job


def test_the_latent_explorer_gets_the_jobs_decoder_and_no_server_slider(vae_2d):
    owner, job = vae_2d
    at = open_page("pages/latent.py", owner)
    assert at.toggle(key="lat_instant").value
    session, header, arrays, _ = packs(at, "lat_explorer")
    assert session == {"job": job.id, "serial": 0, "start": None}
    assert header["name"] == f"{job.id}@10" and header["mode"] == "mlp"
    model = job.model_copy()
    layers = [(w, b) for w, b, _ in latent.mlp_layers(model)]
    assert np.array_equal(
        arrays["weights"], np.concatenate([np.r_[w.ravel(), b] for w, b in layers])
    )
    data = load_dataset("mnist")
    means = latent.encode_means(model, data.x_val[:1000])
    assert np.allclose(arrays["means"], means, atol=1e-5)
    assert header["start"] == pytest.approx(latent.slider_start(means).tolist())
    assert not [s for s in at.slider if s.key.startswith("lat_z")]
    assert charts(at) == ["lat_grid"]  # scatter and decode are the component's now
    strip_session, strip, frames, _ = packs(at, "lat_interpolation")
    assert strip_session["steps"] == 10 and strip_session["memory"] == "interpolation"
    assert frames["frames"].shape == (1, 101, 28, 28, 1)
    assert np.array_equal(frames["ends"], to_uint8(data.x_val[[0, 1]].numpy()))


def test_a_release_reaches_the_server_without_resending_the_payload(vae_2d):
    owner, _ = vae_2d
    at = open_page("pages/latent.py", owner)
    before = component(at, "lat_explorer").bytes
    at.session_state["lat_explorer_point"] = [1.25, -0.5]  # what the release callback stores
    at.run()
    assert component(at, "lat_explorer").bytes == before  # the same element: a cached reference
    # The server-drawn sliders take the point the browser chose.
    at.toggle(key="lat_instant").set_value(False).run()
    assert (at.slider(key="lat_z1").value, at.slider(key="lat_z2").value) == (1.25, -0.5)
    assert "decode(1.25, -0.50)" in chart(at, "lat_decoded")["layout"]["title"]["text"]
    # Moved there, the point goes back to the component, with a serial it has not seen.
    at.slider(key="lat_z1").set_value(0.5).run()
    at.toggle(key="lat_instant").set_value(True).run()
    session, *_ = packs(at, "lat_explorer")
    assert session["start"] == [0.5, -0.5] and session["serial"] >= 1


def test_the_strips_steps_change_the_thumbnails_not_the_decodes(vae_2d):
    owner, _ = vae_2d
    at = open_page("pages/latent.py", owner)
    *_, shared = packs(at, "lat_interpolation")
    at.slider(key="lat_steps").set_value(5).run()
    session, *_, again = packs(at, "lat_interpolation")
    assert session["steps"] == 5 and again == shared
    at.number_input(key="lat_to").set_value(2).run()
    *_, other = packs(at, "lat_interpolation")
    assert other != shared


def test_a_conv_vae_explorer_gets_a_dense_grid_of_the_jobs_decodes():
    owner = new_owner()
    job = trained_job(owner, arch="conv_vae", dataset="mnist",
                      arch_config={"latent_dim": 2, "capacity": 4}, max_steps=5)  # fmt: skip
    at = open_page("pages/latent.py", owner)
    _, header, arrays, shared = packs(at, "lat_explorer")
    assert header["mode"] == "grid" and header["grid"]["side"] == 64
    assert arrays["grid"].shape == (64 * 64, 28, 28, 1)
    assert len(shared) == pytest.approx(3.2e6, rel=0.03)
    (z1_low, z1_high), (z2_low, z2_high) = header["grid"]["z1"], header["grid"]["z2"]
    corners = np.array([[z1_low, z2_high], [z1_high, z2_low]], dtype=np.float32)
    expected = to_uint8(latent.decode(job.model_copy(), corners))  # top left, bottom right
    assert np.array_equal(arrays["grid"][[0, 64 * 64 - 1]], expected)


def test_a_larger_conv_latent_keeps_the_server_sliders():
    owner = new_owner()
    trained_job(owner, arch="conv_vae", dataset="mnist",
                arch_config={"latent_dim": 3, "capacity": 2}, max_steps=5)  # fmt: skip
    at = open_page("pages/latent.py", owner)
    assert at.toggle(key="lat_instant").value
    assert any("your browser cannot decode it" in c.value for c in at.caption)
    assert [s.key for s in at.slider if s.key.startswith("lat_z")] == ["lat_z1", "lat_z2", "lat_z3"]
    assert "lat_decoded" in charts(at)


def test_the_gan_studio_sends_every_class_and_keeps_seeds_on_the_server():
    owner = new_owner()
    job = trained_job(owner, arch="cgan", dataset="mnist", max_steps=10)
    at = open_page("pages/gan_studio.py", owner)
    session, header, arrays, shared = packs(at, "gan_scrubber")
    assert header["sets"] == [str(i) for i in range(10)] and session["steps"] == 10
    assert header["samples_title"] == "16 samples of class {set} (weights of step 10)"
    model = job.model_copy()
    assert np.array_equal(arrays["samples"][3], to_uint8(latent.samples_of_class(model, 3)))
    assert np.array_equal(arrays["frames"][7], to_uint8(latent.noise_line(model, 1, 2, 65, 7)))
    assert not any(s.key == "gan_class" for s in at.selectbox)  # classes are buttons there
    assert "gan_class_samples" not in charts(at) and "gan_grid" in charts(at)
    at.number_input(key="gan_seed").set_value(4).run()
    _, _, changed, _ = packs(at, "gan_scrubber")
    assert np.array_equal(
        changed["samples"][3], to_uint8(latent.samples_of_class(model, 3, seed=4))
    )
    # The class the browser chose is where the server-drawn picker starts.
    at.session_state["gan_scrubber_point"] = {"lambda": 0.25, "set": 6}
    at.toggle(key="gan_instant").set_value(False).run()
    assert at.selectbox(key="gan_class").value == 6
    assert "16 samples of class 6" in chart(at, "gan_class_samples")["layout"]["title"]["text"]


def test_an_unconditional_gan_gets_its_walk_without_classes():
    owner = new_owner()
    job = trained_job(owner, arch="mlp_gan", dataset="mnist", max_steps=5)
    at = open_page("pages/gan_studio.py", owner)
    session, header, arrays, _ = packs(at, "gan_scrubber")
    assert header["sets"] == [] and "samples" not in arrays
    assert not any(n.key == "gan_seed" for n in at.number_input)  # no class samples to seed
    walk = latent.noise_line(job.model_copy(), 1, 2, 65)
    assert np.array_equal(arrays["frames"][0], to_uint8(walk))
    assert any("weights of step 5" in c.value for c in at.caption)
