"""torchvision classifiers retrained on the course's image sets: shapes, parameter counts against
torchvision's own, the frozen feature extractor, and pretrained weights read from the data
folder (a small file written here; nothing is ever downloaded)."""

import pickle

import pytest
import torch
from safetensors.torch import save_file
from torchvision import models

from deeparch.data import dataset_info
from deeparch.errors import ConfigError
from deeparch.models import create_model
from deeparch.models.parts import top_level_parts
from deeparch.models.transfer import BATCH_NORM_MOMENTUM, NETWORKS, WEIGHTS_FOLDER

IMAGE_SETS = ["mnist", "digits", "cifar10"]


def count(module, trainable_only=False):
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@pytest.mark.parametrize("dataset", IMAGE_SETS)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_a_new_head_has_torchvision_own_count_for_that_many_classes(name, dataset):
    info = dataset_info(dataset)
    model, _ = create_model(name, {"input_size": 32}, info)
    reference = models.get_model(name, weights=None, num_classes=info.num_classes)
    assert count(model) == count(reference)
    assert top_level_parts(model) == ["features", "head"]
    model.eval()
    logits = model(torch.rand(2, *info.input_shape))
    assert logits.shape == (2, info.num_classes) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", list(NETWORKS))
def test_freezing_the_features_leaves_only_the_head_to_train(name):
    model, _ = create_model(name, {"freeze_features": True, "input_size": 32})
    assert count(model, trainable_only=True) == count(model.head)
    assert not any(p.requires_grad for p in model.features.parameters())


@pytest.mark.parametrize("name", list(NETWORKS))
def test_an_appended_head_keeps_the_imagenet_layer_and_adds_one(name):
    model, _ = create_model(name, {"head": "append", "input_size": 32})
    imagenet = models.get_model(name, weights=None)
    assert count(model) == count(imagenet) + 1000 * 10 + 10


def squeezenet_state():
    torch.manual_seed(3)
    return models.squeezenet1_1(weights=None).state_dict()


@pytest.fixture
def data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPARCH_DATA_DIR", str(tmp_path))
    (tmp_path / WEIGHTS_FOLDER).mkdir()
    return tmp_path / WEIGHTS_FOLDER


def assert_loaded(model, state):
    # features.0 is torchvision's `features`, so its keys are the saved ones after "features.".
    for key, value in model.features[0].state_dict().items():
        assert torch.equal(value, state[f"features.{key}"])


def test_pretrained_weights_load_from_a_safetensors_file(data_folder):
    state = squeezenet_state()
    save_file(
        {k: v.contiguous() for k, v in state.items()}, data_folder / "squeezenet1_1.safetensors"
    )
    model, _ = create_model("squeezenet1_1", {"pretrained": True, "input_size": 32})
    assert_loaded(model, state)
    fresh, _ = create_model("squeezenet1_1", {"input_size": 32})
    assert not torch.equal(fresh.features[0][0].weight, model.features[0][0].weight)


def test_pretrained_weights_load_from_torchvision_file_with_weights_only(data_folder):
    state = squeezenet_state()
    torch.save(state, data_folder / NETWORKS["squeezenet1_1"].hub_file())
    model, _ = create_model("squeezenet1_1", {"pretrained": True, "input_size": 32})
    assert_loaded(model, state)


class NotATensor:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickled_object_is_refused_never_unpickled(data_folder, capsys):
    with open(data_folder / "squeezenet1_1.pth", "wb") as handle:
        pickle.dump({"features.0.weight": NotATensor()}, handle)
    with pytest.raises(ConfigError) as raised:
        create_model("squeezenet1_1", {"pretrained": True})
    assert raised.value.field == "pretrained" and "weights_only" in str(raised.value)
    assert "must never run" not in capsys.readouterr().out


def test_weights_of_another_network_are_refused_naming_it(data_folder):
    torch.manual_seed(0)
    save_file(
        {k: v.contiguous() for k, v in models.mobilenet_v3_small().state_dict().items()},
        data_folder / "squeezenet1_1.safetensors",
    )
    with pytest.raises(ConfigError) as raised:
        create_model("squeezenet1_1", {"pretrained": True})
    assert "do not fit squeezenet1_1" in str(raised.value)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_missing_weights_name_the_file_and_where_to_put_it(name, data_folder):
    with pytest.raises(ConfigError) as raised:
        create_model(name, {"pretrained": True})
    message = str(raised.value)
    hub_file = NETWORKS[name].hub_file()
    assert raised.value.field == "pretrained"
    assert hub_file in message and str(data_folder) in message
    assert f"https://download.pytorch.org/models/{hub_file}" in message


@pytest.mark.parametrize("name", list(NETWORKS))
def test_batch_norm_statistics_follow_a_short_run(name):
    """torchvision's MobileNetV3 keeps BatchNorm statistics with momentum 0.01, which a run of a
    few hundred steps leaves describing its first weights (its one click: 10% in eval mode); the
    builder sets PyTorch's default for every network (resnet18 already has it)."""
    model, _ = create_model(name, {"input_size": 32})
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(norm.momentum == BATCH_NORM_MOMENTUM == 0.1 for norm in norms)
    assert bool(norms) == (name != "squeezenet1_1")  # SqueezeNet has no batch norm
