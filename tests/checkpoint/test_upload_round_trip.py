"""Every checkpoint the app writes at the registry's defaults loads back through its upload."""

import tomllib
from pathlib import Path

import pytest
import torch

from deeparch.checkpoint import archive
from deeparch.engine.manager import JobManager, TrainConfig
from deeparch.models import get_arch, list_archs

# torchvision's transfer models (resnet18: 11 million parameters, 134 MB with Adam's moments) are
# larger than a browser upload may be (maxUploadSize 64 MB): their checkpoints load from the CLI
# (--resume, evaluate), and the Train page says so beside their download.
BROWSER_ARCHS = [arch for arch in list_archs() if get_arch(arch).family != "transfer"]

CONFIG = Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml"
MB = 2**20


def upload_limit_bytes() -> int:
    """Streamlit's own refusal comes first: server.maxUploadSize, in MB."""
    return int(tomllib.loads(CONFIG.read_text())["server"]["maxUploadSize"]) * MB


@pytest.fixture(scope="module")
def manager():
    return JobManager(max_running=1, heartbeat_timeout=0)


@pytest.mark.parametrize("arch", BROWSER_ARCHS)
def test_the_download_at_defaults_uploads_again_with_the_same_weights(manager, arch):
    job = manager.submit(TrainConfig(arch=arch, max_steps=1), owner="student")
    assert job.wait(120) and job.state == "finished", job.reason
    data = archive.pack_job(job)  # what the Train page's download button gives
    assert len(data) <= upload_limit_bytes(), f"{len(data) / MB:.1f} MB"
    assert len(data) <= archive.MAX_UNPACKED_BYTES
    loaded = archive.load_upload(
        data,
        f"deeparch-{arch}-{job.id}.zip",
        lambda weights: manager.load_checkpoint(weights, owner="student"),
    )
    assert loaded.snapshot()["arch"] == arch
    assert loaded.config.to_dict() == job.config.to_dict()
    trained, back = job.model_copy().state_dict(), loaded.model_copy().state_dict()
    assert trained.keys() == back.keys()
    for name, tensor in trained.items():
        assert torch.equal(back[name], tensor), name
