"""Every page of the Streamlit app runs headless (AppTest) and shows its key widgets."""

import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from deeparch.engine.manager import NotYourJobError, get_manager
from deeparch.models import archs_in_gallery_order, list_archs, list_families

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 120  # seconds per script run: the first import of torch and the datasets is slow


def open_page(page: str | None = None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run_until(at: AppTest, done, attempts: int = 60, pause: float = 0.5) -> None:
    """Rerun the page (run_every never fires under AppTest) until done(at) holds."""
    for _ in range(attempts):
        if done(at):
            return
        time.sleep(pause)
        at.run()
    raise AssertionError("the page never reached the expected state")


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def inspect_count(at: AppTest, label: str) -> str:
    """One of Inspect's totals ("parameters", "trainable", "mult-adds per sample"), read from its
    count line ("**93,322** parameters · **93,322** trainable · ...")."""
    line = next(m.value for m in at.markdown if m.value.endswith(" mult-adds per sample"))
    return {name: value for value, name in re.findall(r"\*\*([\d,]+)\*\* ([^·]+?)(?= ·|$)", line)}[
        label
    ]


def test_home_shows_a_card_per_architecture_with_its_buttons():
    at = open_page()
    titles = [m.value.replace("\\_", "_") for m in at.markdown if m.value.startswith("#### ")]
    assert sorted(titles) == sorted(f"#### {arch}" for arch in list_archs())
    # The registry's gallery order: simplest family first, GANs last of today's families
    # (tests/models/test_registry.py holds the order of the families).
    assert titles == [f"#### {arch}" for arch in archs_in_gallery_order()]
    assert titles[0] == "#### mlp"
    assert at.pills(key="home_families").options == list_families()
    for arch in ("mlp", "cnn"):
        assert at.button(key=f"home_inspect_{arch}").label == "Inspect"
        assert at.button(key=f"home_train_{arch}").label == "Train"
    assert len(at.image) == len(list_archs())  # one drawing per card
    assert any("**93,322** parameters" in m.value for m in at.markdown)  # Chollet's convnet (cnn)


def test_home_train_button_opens_the_train_page_with_that_architecture():
    at = open_page()
    at.button(key="home_train_cnn").click().run()
    assert not at.exception
    assert at.selectbox(key="train_arch").value == "cnn"


def test_sidebar_lists_no_jobs_for_a_new_session():
    at = open_page()
    assert any("No training jobs yet" in c.value for c in at.sidebar.caption)


def test_inspect_shows_the_table_totals_and_widgets_from_the_config():
    at = open_page("pages/inspect.py", {"arch": "cnn"})
    assert at.selectbox(key="inspect_arch").value == "cnn"
    assert inspect_count(at, "parameters") == "93,322"
    # Widgets come from field_specs: a tuple as text, an int as slider, a choice as selectbox.
    assert at.text_input(key="inspect_cnn_channels").value == "32,64,64"
    assert at.slider(key="inspect_cnn_kernel_size").value == 3
    assert at.selectbox(key="inspect_cnn_pooling").value == "max"
    frame = at.dataframe[0].value
    assert int(frame["params"].sum()) == 93_322
    assert list(frame.columns)[:3] == ["name", "type", "output_shape"]


def test_inspect_invalid_hyperparameter_shows_the_engine_message():
    at = open_page("pages/inspect.py", {"arch": "cnn"})
    at.slider(key="inspect_cnn_kernel_size").set_value(11).run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert any("kernel\\_size" in m for m in messages), messages  # escaped Markdown
    at.text_input(key="inspect_cnn_channels").set_value("32,0").run()
    assert any("channels" in e.value for e in at.error)


def test_inspect_diagram_draws_the_traced_graph_and_collapses_blocks():
    at = open_page("pages/inspect.py", {"arch": "resnet", "inspect_view": "Diagram"})
    (chart,) = at.get("graphviz_chart")
    full = chart.proto.spec
    assert full.startswith('digraph "resnet"') and full.count('"add') >= 6  # a skip per block
    at.toggle(key="inspect_collapse_blocks").set_value(True).run()
    (chart,) = at.get("graphviz_chart")
    collapsed = chart.proto.spec
    # Two 3x3 convolutions of 8 channels (8 * 8 * 9 weights each) and two batch norms (2 * 8 each).
    assert '"stages.stage1.block1" [label="stages.stage1.block1\\nConvBlock · 1,184 params"' in (
        collapsed
    )
    assert collapsed.count("->") < full.count("->")
    assert not any("drawn in module order" in w.value for w in at.warning)
    at = open_page("pages/inspect.py", {"arch": "mlp", "inspect_view": "Diagram"})
    assert at.toggle(key="inspect_collapse_blocks").disabled  # a chain: nothing to collapse


def test_inspect_conv_arithmetic_applies_the_small_examples():
    at = open_page("pages/inspect.py", {"arch": "mlp", "inspect_view": "Convolution arithmetic"})
    at.button(key="conv_example_stride 2: 10 → 3").click().run()
    assert any("3 × 3" in s.value for s in at.success)
    at.number_input(key="conv_kernel").set_value(11).run()  # larger than 10 + 2*0
    assert any("a window that fits the padded input" in e.value for e in at.error)


def test_train_page_shows_both_config_forms():
    at = open_page("pages/train.py")
    assert at.selectbox(key="train_arch").value == "mlp"
    assert at.text_input(key="train_mlp_hidden_sizes").value == "500,200,100"
    assert at.selectbox(key="train_cfg_optimizer").value == "adam"
    assert at.button(key="train_start").label == "Start"


def test_train_invalid_hyperparameter_disables_start_and_says_why():
    at = open_page("pages/train.py")
    at.text_input(key="train_mlp_hidden_sizes").set_value("500,abc").run()
    messages = [e.value for e in at.error]
    assert any("hidden\\_sizes" in m for m in messages), messages  # escaped Markdown
    assert at.button(key="train_start").disabled


def test_share_link_prefills_the_train_page():
    at = open_page("pages/train.py", {"arch": "mlp", "hidden_sizes": "64,32", "lr": "0.01"})
    at.switch_page("pages/train.py").run()
    assert at.text_input(key="train_mlp_hidden_sizes").value == "64,32"
    assert at.number_input(key="train_cfg_lr").value == pytest.approx(0.01)


def test_a_share_link_says_what_it_did_not_use_escaped():
    query = {
        "arch": "mlp",
        "dataset": "mnist1d",
        "hidden_sizes": "1 6",
        "epochs": "3",
        "**x**": "[click](http://evil.example)",
    }
    at = open_page("pages/train.py", query)  # the warnings show on the run that reads the link
    assert at.number_input(key="train_cfg_epochs").value == 3  # the good value is used
    assert at.text_input(key="train_mlp_hidden_sizes").value == "500,200,100"  # not 16
    assert at.selectbox(key="train_dataset_mlp").value == "mnist"
    warnings = [w.value for w in at.warning]
    assert warnings[0].startswith(r"The link's value was not used: dataset 'mnist1d' does not suit")
    assert warnings[1] == (
        r"The link's value was not used: hidden\_sizes='1 6' is not allowed: a comma-separated "
        "list of at most 8 integers, each from 1 to 4096"
    )
    assert warnings[2].startswith(
        r"The link's value was not used: \*\*x\*\*='\[click\](http"
        "\u2060://evil.example)' is not a setting: mlp has"
    )
    unknown = open_page("pages/train.py", {"arch": "nosuch"})
    assert unknown.selectbox(key="train_arch").value == "mlp"
    known = ", ".join(arch.replace("_", r"\_") for arch in list_archs())
    assert [w.value for w in unknown.warning] == [
        f"The link's value was not used: arch 'nosuch' is unknown; known: {known}"
    ]


def holds_bytes(value, depth: int = 0) -> bool:
    """Whether a session value is or holds (in tuples, lists, dicts) more than 1 KB of bytes."""
    if isinstance(value, bytes | bytearray):
        return len(value) > 1024
    if depth < 4 and isinstance(value, tuple | list):
        return any(holds_bytes(item, depth + 1) for item in value)
    if depth < 4 and isinstance(value, dict):
        return any(holds_bytes(item, depth + 1) for item in value.values())
    return False


def test_train_flow_starts_a_job_and_shows_its_metrics():
    at = open_page("pages/train.py")
    at.text_input(key="train_mlp_hidden_sizes").set_value("32").run()
    at.number_input(key="train_cfg_max_steps").set_value(30).run()
    at.button(key="train_start").click().run()
    assert not at.exception
    job_id = at.session_state["deeparch_current_job"]
    assert at.query_params["job"] in (job_id, [job_id])
    run_until(at, lambda a: metric(a, "state") in ("finished", "stopped"))
    assert metric(at, "state") == "finished"
    assert float(metric(at, "samples/s").replace(",", "")) > 0
    charts = at.get("plotly_chart")
    assert len(charts) >= 1
    assert at.download_button(key="train_download").label.startswith("Download")
    # The checkpoint is packed when the download is clicked: the session keeps no bytes of it.
    kept = at.session_state.to_dict()
    assert [key for key, value in kept.items() if holds_bytes(value)] == []
    # The sidebar on every page knows the job; Compare lists it.
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert len(at.multiselect(key="compare_runs").value) == 1
    table = at.dataframe[0].value
    assert table.loc["arch"].tolist() == ["mlp"]
    assert table.loc["max_steps"].tolist() == ["30"]


def test_a_link_with_the_job_shows_it_read_only_and_hands_over_nothing():
    at = open_page("pages/train.py")
    at.text_input(key="train_mlp_hidden_sizes").set_value("16").run()
    at.number_input(key="train_cfg_max_steps").set_value(5).run()
    at.button(key="train_start").click().run()
    job_id = at.session_state["deeparch_current_job"]
    owner = at.session_state["deeparch_owner"]
    other = open_page(None, {"job": job_id})  # the address bar, opened in another browser
    assert other.session_state["deeparch_owner"] != owner  # not the same student
    assert other.session_state["deeparch_current_job"] == job_id
    assert [c.value for c in other.sidebar.caption][-1].startswith("No training jobs yet")
    other.switch_page("pages/train.py").run()
    run_until(other, lambda a: metric(a, "state") == "finished")
    assert "Another session's job, shown read-only" in " ".join(c.value for c in other.caption)
    assert not [b for b in other.button if b.key in ("train_stop", "train_pause")]
    with pytest.raises(NotYourJobError):
        get_manager().stop(job_id, other.session_state["deeparch_owner"])


@pytest.fixture
def server_tmp(tmp_path_factory, monkeypatch) -> Path:
    """The server's temporary folder, for this test alone: what an upload leaves there shows."""
    import tempfile

    path = tmp_path_factory.mktemp("server-tmp")
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


def left_by_deeparch(folder: Path) -> list[str]:
    # torch keeps a cache of its own there (torchinductor_<user>), which is no upload.
    return [path.name for path in folder.iterdir() if not path.name.startswith("torchinductor")]


def test_upload_refuses_a_file_that_is_not_a_checkpoint(server_tmp):
    at = open_page("pages/train.py")
    at.file_uploader(key="train_upload").upload("weights.safetensors", b"\x80\x04 not a checkpoint")
    at.run()
    assert any(
        e.value.startswith("Could not load weights.safetensors: weights.safetensors is a pickled")
        for e in at.error
    ), [e.value for e in at.error]
    assert not any("deeparch-upload-" in e.value for e in at.error)  # no server paths
    assert left_by_deeparch(server_tmp) == []  # the upload's folder is deleted


def test_compare_without_runs_says_what_to_do():
    at = open_page("pages/compare.py")
    assert any("No runs yet" in i.value for i in at.info)


@pytest.mark.parametrize("arch", list_archs())
def test_inspect_counts_every_parameter_of_every_architecture(arch):
    from deeparch.models import create_model

    at = open_page("pages/inspect.py", {"arch": arch})
    model, _ = create_model(arch)
    expected = sum(p.numel() for p in model.parameters())
    assert inspect_count(at, "parameters") == f"{expected:,}"
    at.query_params["arch"] = arch
    at.switch_page("pages/train.py").run()  # the Train form of the same architecture
    assert not at.exception


def test_divergence_shows_the_engine_reason():
    at = open_page("pages/train.py", {"arch": "vae"})  # its KL term explodes at lr 10
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train_cfg_optimizer").set_value("sgd").run()
    at.number_input(key="train_cfg_lr").set_value(10.0).run()
    at.number_input(key="train_cfg_max_steps").set_value(300).run()
    at.button(key="train_start").click().run()
    run_until(at, lambda a: metric(a, "state") not in ("queued", "running"))
    assert metric(at, "state") == "diverged"
    assert any("The run diverged: the loss exploded" in e.value for e in at.error)


def test_upload_of_a_saved_checkpoint_loads_it_as_a_run(tmp_path, server_tmp):
    import io
    import zipfile

    from deeparch.engine.config import TrainConfig
    from deeparch.engine.manager import get_manager

    config = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, max_steps=3)
    job = get_manager().submit(config)
    assert job.wait(60)
    weights = job.save_checkpoint(tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in tmp_path.iterdir():
            archive.write(path, path.name)
    at = open_page("pages/train.py")
    at.file_uploader(key="train_upload").upload("run.zip", buffer.getvalue()).run()
    assert not at.exception
    assert any("Loaded mlp" in s.value for s in at.success), [e.value for e in at.error]
    assert left_by_deeparch(server_tmp) == []  # read into memory, then deleted
    assert weights.suffix == ".safetensors"
    at.switch_page("pages/compare.py").run()
    table = at.dataframe[0].value
    assert table.loc["mlp.hidden_sizes"].tolist() == ["8"]
    assert table.loc["steps"].tolist() == ["3"]


def test_a_run_whose_loss_exploded_without_nan_is_diverged_with_a_hint():
    # SGD at lr 10 blows the MLP's loss up to ~1e16 without NaN (its ReLUs die and the loss would
    # settle at chance): the engine ends it as diverged as soon as the loss passes 1000x its first.
    at = open_page("pages/train.py", {"arch": "mlp", "optimizer": "sgd", "lr": "10"})
    at.number_input(key="train_cfg_max_steps").set_value(20).run()
    at.button(key="train_start").click().run()
    run_until(at, lambda a: metric(a, "state") not in ("queued", "running"))
    assert metric(at, "state") == "diverged"
    assert any("The run diverged: the loss exploded from" in e.value
               and "try a learning rate below 10" in e.value for e in at.error)  # fmt: skip
    # Compare puts such a run on a log axis by itself, and shows "—" for metrics it never reached.
    at.switch_page("pages/compare.py").run()
    assert at.toggle(key="compare_log_loss_True").value is True


def test_an_out_of_range_number_is_named_and_disables_start():
    at = open_page("pages/train.py")
    at.number_input(key="train_cfg_lr").set_value(100.0).run()
    messages = [e.value for e in at.error]
    assert any(m.startswith("lr=100.0 is not allowed") for m in messages), messages
    assert at.button(key="train_start").disabled


def test_each_architecture_brings_its_training_defaults_and_keeps_other_settings():
    at = open_page("pages/train.py")
    assert at.number_input(key="train_cfg_epochs").value == 10  # mlp's
    at.number_input(key="train_cfg_weight_decay").set_value(0.01).run()
    at.selectbox(key="train_arch").set_value("lstm").run()
    assert at.number_input(key="train_cfg_epochs").value == 20
    assert at.number_input(key="train_cfg_lr").value == pytest.approx(3e-3)
    assert at.number_input(key="train_cfg_weight_decay").value == pytest.approx(0.01)
    at.selectbox(key="train_arch").set_value("cnn").run()
    assert at.number_input(key="train_cfg_epochs").value == 5
    assert at.number_input(key="train_cfg_lr").value == pytest.approx(1e-3)  # lstm's lr undone
    # A link records a value that differs from the architecture's default, even when it equals
    # the generic one (2 epochs), and reopens it.
    at.number_input(key="train_cfg_epochs").set_value(2).run()
    link = next(c.value for c in at.code if "arch=cnn" in c.value)
    assert "epochs=2" in link
    query = dict(part.split("=") for part in link.split("?")[1].split("&"))
    reopened = open_page("pages/train.py", query)
    reopened.switch_page("pages/train.py").run()
    assert reopened.number_input(key="train_cfg_epochs").value == 2
