"""What a link or an uploaded file can put on a page: text, never a link, an image or HTML."""

import io
import json
import zipfile

import pytest
import safetensors.torch

from deeparch.checkpoint import files as checkpoint
from deeparch.engine.config import TrainConfig
from deeparch.engine.manager import JobManager
from deeparch.figures.text import escape_markdown
from tests.app.test_pages import open_page

PHISH = "[Click here to fix your settings](https://evil.example/phish)"
PIXEL = "![x](https://evil.example/pixel.png)"


def assert_harmless(shown: str, value: str) -> None:
    """`value` appears in `shown` escaped: as text, with no link or image Markdown left."""
    assert escape_markdown(value) in shown
    unescaped = shown.replace("\\[", "").replace("\\]", "").replace("\\!", "")
    assert "](" not in unescaped and "https://" not in shown


@pytest.mark.parametrize("value", [PHISH, PIXEL])
def test_a_link_value_shows_as_text_in_the_train_pages_warning(value):
    at = open_page("pages/train.py", {"arch": "mlp", "lr": value})
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("The link's value was not used: lr=")
    assert_harmless(warning, value)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    job = JobManager(max_running=1, heartbeat_timeout=0).submit(
        TrainConfig(arch="mlp", arch_config={"hidden_sizes": (8,)}, max_steps=3)
    )
    assert job.wait(60) and job.state == "finished", job.reason
    return job.save_checkpoint(tmp_path_factory.mktemp("saved") / "mlp.safetensors")


def test_a_checkpoint_whose_arch_is_a_markdown_link_shows_it_as_text(saved):
    tensors, meta = checkpoint.read_checkpoint(saved)
    meta["arch"] = meta["train_config"]["arch"] = PHISH
    buffer = io.BytesIO()
    data = safetensors.torch.save(tensors, {checkpoint.METADATA_KEY: json.dumps(meta)})
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("run.safetensors", data)
    at = open_page("pages/train.py")
    at.file_uploader(key="train_upload").upload(f"{PIXEL}.zip", buffer.getvalue()).run()
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert error.startswith("Could not load ")
    assert_harmless(error, PHISH)
    assert_harmless(error, PIXEL)


def test_a_pt_file_is_refused_with_the_types_that_are_allowed():
    at = open_page("pages/train.py")
    at.file_uploader(key="train_upload").upload("model.pt", b"\x80\x04 a pickle").run()
    (error,) = [e.value for e in at.error]
    assert error == escape_markdown(
        "Could not load model.pt: it is a pickled PyTorch file, which deeparch never opens "
        "because unpickling runs any code stored in it; upload a .zip or a .safetensors "
        "checkpoint (the Train page's download gives a .zip)"
    )


def test_an_unknown_architecture_in_an_inspect_link_is_named():
    at = open_page("pages/inspect.py", {"arch": "nosuch"})
    assert at.selectbox(key="inspect_arch").value == "cnn"
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("The link's value was not used: arch 'nosuch' is unknown; known: ")
    good = open_page("pages/inspect.py", {"arch": "mlp"})
    assert good.selectbox(key="inspect_arch").value == "mlp" and not good.warning
