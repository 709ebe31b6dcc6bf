"""Transfer learning: torchvision's ImageNet classifiers (resnet18, mobilenet_v3_small,
squeezenet1_1) on the course's image sets, with a new head and, optionally, a frozen feature
extractor (Yosinski et al. 2014, "How transferable are features in deep neural networks?";
PyTorch's transfer-learning tutorial).

Each model is split into `features` (everything up to the last layer, ending in one vector per
image) and `head` (the layer that scores the classes), so `--set freeze=features` and the Train
page's freeze picker name the feature extractor. Inputs are adapted, not the network: grey
images are repeated to three channels, resized to `input_size` and normalised with ImageNet's
mean and spread, so pretrained filters see what they were trained on.

Pretrained weights are never downloaded: `pretrained=true` reads `<data folder>/weights/` for
torchvision's own file (resnet18-f37072fd.pth, from download.pytorch.org) or `<name>.safetensors`
/ `<name>.pth`. A .safetensors file is read by safetensors, a .pth by torch.load(weights_only=True),
which refuses any pickled object other than tensors and plain containers; nothing else is opened.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deeparch.config import hp
from deeparch.data import default_data_root
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.models.registry import ArchSpec, register

GALLERY_POSITION = 45  # after the ResNets it borrows from, before the recurrent families
WEIGHTS_FOLDER = "weights"  # inside the data folder (DEEPARCH_DATA_DIR)
# resnet18's file is 46.8 MB; a weights file far beyond the largest of these is not one of them.
MAX_WEIGHTS_BYTES = 200_000_000
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_CLASSES = 1000
# PyTorch's default. torchvision builds MobileNetV3 with BatchNorm momentum 0.01 (TensorFlow's
# decay 0.99, for runs of hundreds of thousands of steps): its running statistics average about
# the last 100 batches, so after a short run here they still describe the early weights, and in
# eval mode the one-click run scored 10.0% (every digit one class) while train mode scored 93%
# and the same weights with statistics recomputed on training batches 93%. At 0.1 the
# statistics follow about the last 10 batches, which a run of a few hundred steps settles.
BATCH_NORM_MOMENTUM = 0.1
HEADS = ("replace", "append")


@dataclass(frozen=True)
class TransferConfig:
    pretrained: bool = hp(
        False,
        "Start from torchvision's ImageNet weights, read from the data folder's weights/ "
        "(never downloaded); off: the same network from random weights",
    )
    freeze_features: bool = hp(
        False,
        "Keep the feature extractor's weights as they are and train only the head (a fixed "
        "feature extractor); the same as freeze=features",
    )
    head: str = hp(
        "replace",
        "replace: a new last layer with one output per class of the dataset; append: keep the "
        "1000-class ImageNet layer and learn a new layer on top of its scores",
        choices=HEADS,
    )
    input_size: int = hp(
        64,
        "Side the images are resized to: ImageNet models were trained at 224, but 64 keeps a CPU "
        "step short (resnet18 at 224 is about 12x slower)",
        min=32,
        max=224,
        step=16,
    )


class ImageNetInput(nn.Module):
    """(N, C, H, W) in [0, 1] -> (N, 3, S, S) normalised as ImageNet's training images were."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        # Not persistent: constants, so checkpoints hold only what is learned.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey: the same value in red, green and blue
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std


class TransferClassifier(nn.Module):
    """adapt (no parameters) -> features -> head: logits (N, num_classes)."""

    def __init__(self, adapt: nn.Module, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.adapt = adapt
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.adapt(x)))


# ---- the three networks, each split into features and its ImageNet head ------------------------


def _split_resnet18(network: nn.Module) -> tuple[nn.Module, nn.Module, int]:
    children = dict(network.named_children())
    body = [module for name, module in children.items() if name != "fc"]
    return nn.Sequential(*body, nn.Flatten()), network.fc, network.fc.in_features


def _split_mobilenet_v3_small(network: nn.Module) -> tuple[nn.Module, nn.Module, int]:
    *kept, last = list(network.classifier)
    features = nn.Sequential(network.features, network.avgpool, nn.Flatten(), *kept)
    return features, last, last.in_features


def _split_squeezenet1_1(network: nn.Module) -> tuple[nn.Module, nn.Module, int]:
    dropout, conv, relu, pool = list(network.classifier)
    # SqueezeNet scores classes with a 1x1 convolution averaged over the image (no Linear).
    head = nn.Sequential(conv, relu, pool, nn.Flatten())
    return nn.Sequential(network.features, dropout), head, conv.in_channels


def _squeezenet_head(in_channels: int, num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, num_classes, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


@dataclass(frozen=True)
class Network:
    """A torchvision classifier: how to build it, split it and give it a new head."""

    name: str
    split: Callable[[nn.Module], tuple[nn.Module, nn.Module, int]]
    new_head: Callable[[int, int], nn.Module] = nn.Linear
    weights_enum: str = ""

    def hub_file(self) -> str:
        """torchvision's file name for the ImageNet weights (resnet18-f37072fd.pth)."""
        from torchvision import models  # late import: torchvision's model zoo, only when used

        return Path(models.get_weight(self.weights_enum).url).name

    def hub_url(self) -> str:
        from torchvision import models  # late import: torchvision's model zoo, only when used

        return models.get_weight(self.weights_enum).url


NETWORKS = {
    network.name: network
    for network in (
        Network("resnet18", _split_resnet18, weights_enum="ResNet18_Weights.IMAGENET1K_V1"),
        Network(
            "mobilenet_v3_small",
            _split_mobilenet_v3_small,
            weights_enum="MobileNet_V3_Small_Weights.IMAGENET1K_V1",
        ),
        Network(
            "squeezenet1_1",
            _split_squeezenet1_1,
            _squeezenet_head,
            weights_enum="SqueezeNet1_1_Weights.IMAGENET1K_V1",
        ),
    )
}


# ---- pretrained weights from the data folder -----------------------------------------------------


def weights_folder() -> Path:
    return default_data_root() / WEIGHTS_FOLDER


def weight_candidates(network: Network, folder: Path) -> list[Path]:
    """Where pretrained weights may be, in the order they are looked for."""
    return [
        folder / network.hub_file(),
        folder / f"{network.name}.safetensors",
        folder / f"{network.name}.pth",
    ]


def _unusable(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        "pretrained",
        True,
        "false, or a torchvision state dict in the weights file",
        f"{path} {problem}",
    )


@functools.lru_cache(maxsize=4)
def _read_state(path: str, mtime_ns: int, size: int) -> dict[str, torch.Tensor]:
    """A weights file's tensors, read once per version of the file for the whole class."""
    del mtime_ns, size  # part of the cache key only: an edited file is read again
    target = Path(path)
    if target.suffix == ".safetensors":
        from safetensors import SafetensorError  # late import: only when weights are read
        from safetensors.torch import load_file

        try:
            return load_file(str(target), device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise _unusable(target, f"is not a readable safetensors file ({error})") from None
    try:
        state = torch.load(target, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _unusable(
            target, f"cannot be read as tensors alone (weights_only): {first}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _unusable(target, "holds no state dict of tensors")
    return state


def read_pretrained(network: Network, folder: Path | None = None) -> dict[str, torch.Tensor]:
    """The ImageNet weights of a network from the data folder; a ConfigError naming the file and
    the folder when it is not there (nothing is downloaded)."""
    folder = folder if folder is not None else weights_folder()
    for path in weight_candidates(network, folder):
        if not path.is_file():
            continue
        stat = path.stat()
        if stat.st_size > MAX_WEIGHTS_BYTES:
            raise _unusable(path, f"is {stat.st_size:,} bytes, more than {MAX_WEIGHTS_BYTES:,}")
        return _read_state(str(path), stat.st_mtime_ns, stat.st_size)
    raise ConfigError(
        "pretrained",
        True,
        f"false, or the weights file {network.hub_file()} in {folder}",
        f"nothing is downloaded here: fetch {network.hub_url()} where there is a network and "
        f"put it there, or its state dict as {network.name}.safetensors; DEEPARCH_DATA_DIR "
        "sets another data folder",
    )


def load_pretrained(network: Network, model: nn.Module) -> None:
    """Copy the ImageNet weights into the torchvision model (the keys must all match)."""
    state = read_pretrained(network)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise _unusable(Path(network.name), f"weights do not fit {network.name}: {first}") from None


# ---- builders ----------------------------------------------------------------------------------


def build_transfer(name: str, config: TransferConfig, info: DataInfo) -> TransferClassifier:
    from torchvision import models  # late import: torchvision's model zoo, only when built

    network = NETWORKS[name]
    backbone = models.get_model(name, weights=None)  # never a download
    if config.pretrained:
        load_pretrained(network, backbone)
    for module in backbone.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = BATCH_NORM_MOMENTUM
    features, imagenet_head, width = network.split(backbone)
    if config.head == "replace":
        head = network.new_head(width, info.num_classes)
    else:
        head = nn.Sequential(imagenet_head, nn.Linear(IMAGENET_CLASSES, info.num_classes))
    if config.freeze_features:
        features.requires_grad_(False)
    return TransferClassifier(ImageNetInput(config.input_size), features, head)


def check_transfer(config: TransferConfig, info: DataInfo) -> None:
    if info.input_shape[0] not in (1, 3):
        raise ConfigError(
            "dataset",
            info.name,
            "grey or colour images (1 or 3 channels)",
            "ImageNet models see RGB",
        )


def build_resnet18(config: TransferConfig, info: DataInfo) -> TransferClassifier:
    return build_transfer("resnet18", config, info)


def build_mobilenet_v3_small(config: TransferConfig, info: DataInfo) -> TransferClassifier:
    return build_transfer("mobilenet_v3_small", config, info)


def build_squeezenet1_1(config: TransferConfig, info: DataInfo) -> TransferClassifier:
    return build_transfer("squeezenet1_1", config, info)


DESCRIPTIONS = {
    "resnet18": "torchvision's ResNet-18 (He et al. 2016), an ImageNet classifier with 11 "
    "million parameters, retrained for this dataset: a new head, optionally ImageNet's weights "
    "and a frozen feature extractor. Transfer learning: what a network learned on photos, reused.",
    "mobilenet_v3_small": "torchvision's MobileNetV3-Small (Howard et al. 2019): depthwise "
    "separable convolutions and squeeze-and-excitation, 2.5 million parameters, for phones; "
    "retrained here with a new head, optionally from ImageNet's weights.",
    "squeezenet1_1": "torchvision's SqueezeNet 1.1 (Iandola et al. 2016): AlexNet's accuracy with "
    "50x fewer parameters, from 1x1 'squeeze' and 'expand' convolutions, classes scored by a 1x1 "
    "convolution; retrained here with a new head, optionally from ImageNet's weights.",
}

# Beyond the shared {"epochs": 2, "batch_size": 32}: SqueezeNet from random weights (no batch
# norm) stays at chance at Adam's 1e-3 (10.1% after 250 steps) and reaches 84% at 3e-4.
TRAIN_DEFAULTS = {"squeezenet1_1": {"lr": 3e-4}}

for _name, _builder in (
    ("resnet18", build_resnet18),
    ("mobilenet_v3_small", build_mobilenet_v3_small),
    ("squeezenet1_1", build_squeezenet1_1),
):
    register(
        ArchSpec(
            name=_name,
            task="classify",
            config_cls=TransferConfig,
            builder=_builder,
            data_kinds=("image",),
            default_dataset="mnist",
            description=DESCRIPTIONS[_name],
            check=check_transfer,
            train_defaults={"epochs": 2, "batch_size": 32, **TRAIN_DEFAULTS.get(_name, {})},
        )
    )
