"""Pages keep what the student chose: a page switch, a reload with ?job=<id>, an Inspect link."""

import time
import uuid

from deeparch.data.catalogue import load_dataset
from deeparch.engine.config import TrainConfig
from pages._shared import manager
from tests.app.test_explore_pages import open_page as open_explore_page
from tests.app.test_explore_pages import trained_job
from tests.app.test_pages import inspect_count, metric, open_page, run_until


def cnn_form(at) -> dict:
    """What the Train form shows for a cnn: the architecture, a field of its own, training ones."""
    values = {"arch": at.selectbox(key="train_arch").value}
    values["channels"] = at.text_input(key="train_cnn_channels").value
    for name in ("lr", "epochs", "max_steps", "seed"):
        values[name] = at.number_input(key=f"train_cfg_{name}").value
    return values


def test_train_compare_train_keeps_the_form_and_the_share_link():
    at = open_page("pages/train.py")
    at.selectbox(key="train_arch").set_value("cnn").run()
    assert at.number_input(key="train_cfg_epochs").value == 5  # cnn's own training default
    at.text_input(key="train_cnn_channels").set_value("8,16").run()
    at.number_input(key="train_cfg_lr").set_value(0.01).run()
    for _ in range(2):  # the second return once lost the architecture's training defaults
        at.switch_page("pages/compare.py").run()
        assert not at.exception
        at.switch_page("pages/train.py").run()
        assert not at.exception
        # epochs 5: cnn's own training default
        expected = {"arch": "cnn", "channels": "8,16", "lr": 0.01, "epochs": 5}
        assert cnn_form(at) == {**expected, "max_steps": 0, "seed": 0}
        link = at.code[0].value
        assert "arch=cnn" in link and "channels=8,16" in link and "lr=0.01" in link
        assert "epochs" not in link  # cnn's default, not the generic 2


def test_an_architecture_switch_keeps_each_architectures_own_values():
    at = open_page("pages/train.py")
    at.text_input(key="train_mlp_hidden_sizes").set_value("32").run()
    at.selectbox(key="train_arch").set_value("cnn").run()
    at.selectbox(key="train_arch").set_value("mlp").run()
    assert at.text_input(key="train_mlp_hidden_sizes").value == "32"
    assert at.number_input(key="train_cfg_epochs").value == 10  # mlp's default is back


def test_reload_with_the_job_shows_the_jobs_own_settings():
    at = open_page("pages/train.py")
    at.selectbox(key="train_arch").set_value("cnn").run()
    at.text_input(key="train_cnn_channels").set_value("4,8").run()
    at.number_input(key="train_cfg_max_steps").set_value(2).run()
    at.number_input(key="train_cfg_seed").set_value(7).run()
    at.button(key="train_start").click().run()
    job_id = at.session_state["deeparch_current_job"]
    reloaded = open_page(None, {"job": job_id})
    reloaded.switch_page("pages/train.py").run()
    assert not reloaded.exception
    expected = {"arch": "cnn", "channels": "4,8", "max_steps": 2, "seed": 7, "epochs": 5}
    assert cnn_form(reloaded) == {**expected, "lr": 0.001}
    # The student's later change stays: the job's settings are shown once, not forced.
    reloaded.number_input(key="train_cfg_seed").set_value(3).run()
    reloaded.switch_page("pages/home.py").run()
    reloaded.switch_page("pages/train.py").run()
    assert reloaded.number_input(key="train_cfg_seed").value == 3


def test_inspect_keeps_its_architecture_after_another_page():
    at = open_page("pages/inspect.py")
    at.selectbox(key="inspect_arch").set_value("resnet").run()
    at.slider(key="inspect_resnet_blocks_per_stage").set_value(1).run()
    expected = inspect_count(at, "parameters")
    at.switch_page("pages/train.py").run()
    at.switch_page("pages/inspect.py").run()
    assert at.selectbox(key="inspect_arch").value == "resnet"
    assert at.slider(key="inspect_resnet_blocks_per_stage").value == 1
    assert inspect_count(at, "parameters") == expected


def test_inspect_writes_its_settings_to_the_url_and_the_link_reopens_the_table():
    at = open_page("pages/inspect.py")
    at.selectbox(key="inspect_arch").set_value("cnn").run()
    at.text_input(key="inspect_cnn_channels").set_value("8,16").run()
    expected = inspect_count(at, "parameters")
    params = {key: at.query_params[key] for key in at.query_params}
    assert params == {"arch": "cnn", "dataset": "mnist", "channels": "8,16"}, params
    reopened = open_page("pages/inspect.py", params)
    assert reopened.text_input(key="inspect_cnn_channels").value == "8,16"
    assert inspect_count(reopened, "parameters") == expected
    assert not reopened.warning


def test_an_inspect_link_with_bad_values_says_what_was_not_used():
    at = open_page("pages/inspect.py", {"arch": "cnn", "kernel_size": "99", "epochs": "3"})
    warnings = [w.value.replace("\\_", "_") for w in at.warning]
    assert any("kernel_size='99'" in w for w in warnings), warnings
    assert any("epochs='3' is a training setting" in w for w in warnings), warnings
    assert at.slider(key="inspect_cnn_kernel_size").value == 3  # the default stays
    assert inspect_count(at, "parameters") == "93,322"


def test_inspect_a_torchvision_model_by_name_and_by_link():
    at = open_page("pages/inspect.py", {"arch": "torchvision:googlenet"})
    assert at.radio(key="inspect_source").value == "torchvision"
    assert at.selectbox(key="inspect_torchvision_model").value == "googlenet"
    # Built without weights, googlenet keeps its two auxiliary classifiers.
    assert inspect_count(at, "parameters") == "13,004,888"
    notes = [i.value for i in at.info]
    assert any("aux1, aux2" in n and "6,624,904" in n for n in notes), notes
    at.selectbox(key="inspect_torchvision_model").set_value("resnet18").run()
    assert inspect_count(at, "parameters") == "11,689,512"  # torchvision publishes 11,689,512
    at.number_input(key="inspect_torchvision_num_classes").set_value(10).run()
    assert inspect_count(at, "parameters") == f"{11_689_512 - 1000 * 513 + 10 * 513:,}"
    assert at.query_params["arch"] == "torchvision:resnet18"
    assert at.query_params["num_classes"] == "10"
    bad = open_page("pages/inspect.py", {"arch": "torchvision:resnet19"})
    assert any("'resnet19' is unknown" in w.value for w in bad.warning)
    huge = open_page("pages/inspect.py", {"arch": "torchvision:vit_h_14"})
    assert any("at most 200,000,000 parameters" in e.value for e in huge.error), [
        e.value for e in huge.error
    ]


def test_start_waits_while_the_students_own_run_trains_and_replace_says_so():
    at = open_page("pages/train.py", {"arch": "mlp", "hidden_sizes": "8", "epochs": "200"})
    at.switch_page("pages/train.py").run()
    at.button(key="train_start").click().run()
    first = at.session_state["deeparch_current_job"]
    assert at.button(key="train_start").disabled
    assert any("Your mlp run is" in c.value for c in at.caption), [c.value for c in at.caption]
    at.button(key="train_replace").click().run()
    second = at.session_state["deeparch_current_job"]
    assert second != first

    # a stop is a request the training thread answers at its next step
    deadline = time.monotonic() + 60
    while manager().get(first).state != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert manager().get(first).state == "stopped"
    assert "replaced by a new run" in manager().get(first).reason
    assert manager().get(second).state in ("queued", "running")
    at.button(key="train_stop").click().run()
    run_until(at, lambda a: metric(a, "state") == "stopped")
    assert not at.button(key="train_start").disabled


def test_compare_keeps_the_chosen_runs_across_pages():
    at = open_page("pages/train.py")
    owner = at.session_state["deeparch_owner"]
    tiny = TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, batch_size=32, max_steps=2)
    jobs = [manager().submit(tiny, owner=owner) for _ in range(3)]
    assert all(job.wait(60) and job.state == "finished" for job in jobs)
    at.switch_page("pages/compare.py").run()
    assert len(at.multiselect(key="compare_runs").value) == 3  # the newest few at first
    at.multiselect(key="compare_runs").set_value([jobs[0].id]).run()
    for page in ("pages/train.py", "pages/compare.py", "pages/inspect.py", "pages/compare.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="compare_runs").value == [jobs[0].id]


def test_feature_maps_keep_the_image_layer_and_channel_and_drop_what_no_longer_fits():
    owner = f"test-{uuid.uuid4().hex[:8]}"
    job = trained_job(owner, arch="cnn", dataset="mnist", max_steps=3)
    at = open_explore_page("pages/features.py", owner)
    at.number_input(key="feat_index").set_value(7).run()
    at.selectbox(key="feat_layer").set_value("features.conv2").run()
    at.slider(key="feat_channel").set_value(5).run()
    for page in ("pages/compare.py", "pages/features.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
    chosen = (
        at.number_input(key="feat_index").value,
        at.selectbox(key="feat_layer").value,
        at.slider(key="feat_channel").value,
    )
    assert chosen == (7, "features.conv2", 5)
    # A kept choice that the shown run cannot take (an image past the dataset's end, a layer
    # it does not have) starts again at the first.
    count = len(load_dataset(job.dataset).x_val)
    at.switch_page("pages/compare.py").run()
    at.session_state["deeparch_kept"] |= {"feat_index": count, "feat_layer": "no.such.layer"}
    at.switch_page("pages/features.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="feat_index").value == 0
    assert at.selectbox(key="feat_layer").value == "features.conv1"


def test_the_sequence_page_keeps_its_example_across_pages():
    owner = f"test-{uuid.uuid4().hex[:8]}"
    trained_job(owner, arch="gru", dataset="mnist_rows", max_steps=3)
    at = open_explore_page("pages/sequences.py", owner)
    at.number_input(key="seq_index").set_value(3).run()
    for page in ("pages/train.py", "pages/sequences.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="seq_index").value == 3
