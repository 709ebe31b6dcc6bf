"""U-Net denoisers: a SEGAN-style 1-D generator for sequences and a small 2-D U-Net for images."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.models.registry import ArchSpec, register

GALLERY_POSITION = 100  # Home's gallery: simplest idea first (registry.list_families)

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
CONV_TRANSPOSE = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}


@dataclass(frozen=True)
class UNet1dConfig:
    depth: int = hp(2, "downsampling levels; the length shrinks by `stride` at each", min=1, max=4)
    base_channels: int = hp(
        16, "channels at the first level; doubled at every deeper level", min=2, max=64
    )
    kernel_size: int = hp(
        4, "kernel width of the strided and transposed convolutions", min=2, max=9
    )
    stride: int = hp(2, "downsampling factor per level (SEGAN uses 4 on long audio)", min=2, max=4)
    skip_connections: bool = hp(
        True, "concatenate each encoder level's features into the decoder level of the same length"
    )
    noise_std: float = hp(
        0.5,
        "std of the Gaussian noise added to the clean input during training",
        min=0.0,
        max=2.0,
        step=0.05,
    )


@dataclass(frozen=True)
class UNet2dConfig:
    depth: int = hp(
        2, "downsampling levels; height and width shrink by `stride` at each", min=1, max=4
    )
    base_channels: int = hp(
        16, "channels at the first level; doubled at every deeper level", min=2, max=64
    )
    kernel_size: int = hp(4, "kernel size of the strided and transposed convolutions", min=2, max=7)
    stride: int = hp(2, "downsampling factor per level", min=2, max=4)
    skip_connections: bool = hp(
        True,
        "concatenate each encoder level's feature maps into the decoder level of the same size",
    )
    noise_std: float = hp(
        0.3,
        "std of the Gaussian noise added to the clean image during training",
        min=0.0,
        max=1.0,
        step=0.05,
    )


def level_widths(base_channels: int, depth: int) -> list[int]:
    """Channels of encoder levels 1..depth: base, 2 base, 4 base, ..."""
    return [base_channels * 2**level for level in range(depth)]


class DownBlock(nn.Module):
    """Strided convolution that divides every spatial size exactly by `stride`, then ReLU."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        # Total padding k - s makes the output exactly size / stride; split it left/right
        # (SEGAN's asymmetric padding) so odd k - s works too.
        extra = kernel_size - stride
        self.padding = (extra // 2, extra - extra // 2) * dims
        self.conv = CONV[dims](in_ch, out_ch, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(F.pad(x, self.padding)))


class UpBlock(nn.Module):
    """Transposed convolution that multiplies every spatial size exactly by `stride`, then ReLU."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        # Output size (L-1)s - 2p + k + op; p and op chosen so it is exactly L*s.
        extra = kernel_size - stride
        padding = (extra + 1) // 2
        output_padding = 2 * padding - extra  # 0 or 1, always below stride
        self.deconv = CONV_TRANSPOSE[dims](
            in_ch,
            out_ch,
            kernel_size,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.deconv(x))


class Bottleneck(nn.Module):
    """A same-size convolution at the lowest resolution, between encoder and decoder."""

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        self.conv = CONV[dims](channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class UNet(nn.Module):
    """Encoder-bottleneck-decoder with optional concatenating skip connections (Ronneberger 2015).

    dims=1 takes sequences (N, T, F) and returns (N, T, F); dims=2 takes images (N, C, H, W).
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        config: UNet1dConfig | UNet2dConfig,
        output_activation: str,
    ) -> None:
        super().__init__()
        self.dims = dims
        self.noise_std = config.noise_std
        self.skip_connections = config.skip_connections
        self.output_activation = output_activation
        widths = level_widths(config.base_channels, config.depth)
        k, s = config.kernel_size, config.stride
        encoder_in = [in_channels] + widths[:-1]
        self.encoder = nn.ModuleList(
            DownBlock(dims, encoder_in[i], widths[i], k, s) for i in range(config.depth)
        )
        self.bottleneck = Bottleneck(dims, widths[-1])
        # Decoder from the deepest level up; level i returns to level i-1's width (level 1 keeps
        # its own). With skips each level also reads the encoder output of its size.
        decoder = []
        for level in reversed(range(config.depth)):
            in_ch = widths[level] * (2 if config.skip_connections else 1)
            out_ch = widths[max(level - 1, 0)]
            decoder.append(UpBlock(dims, in_ch, out_ch, k, s))
        self.decoder = nn.ModuleList(decoder)
        self.head = CONV[dims](widths[0], in_channels, 1)  # 1x1: features -> input channels

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        if self.dims == 1:
            noisy = noisy.transpose(1, 2)  # (N, T, F) -> (N, F, T): Conv1d wants channels first
        features = noisy
        skips = []
        for block in self.encoder:
            features = block(features)
            skips.append(features)
        features = self.bottleneck(features)
        for block in self.decoder:
            skip = skips.pop()  # the encoder output at this decoder level's input size
            if self.skip_connections:
                features = torch.cat([features, skip], dim=1)
            features = block(features)
        clean = self.head(features)
        if self.output_activation == "sigmoid":
            clean = torch.sigmoid(clean)
        if self.dims == 1:
            clean = clean.transpose(1, 2)  # (N, F, T) -> (N, T, F)
        return clean


def max_depth(sizes: tuple[int, ...], stride: int) -> int:
    """Largest depth for which every size divides by stride**depth."""
    depth = 0
    while all(size % stride ** (depth + 1) == 0 for size in sizes):
        depth += 1
    return depth


def _check_unet(config: UNet1dConfig | UNet2dConfig, sizes: tuple[int, ...], what: str) -> None:
    if config.kernel_size < config.stride:
        raise ConfigError(
            "kernel_size",
            config.kernel_size,
            f"at least stride ({config.stride})",
            "a kernel narrower than its stride skips input positions",
        )
    deepest = max_depth(sizes, config.stride)
    shape = "x".join(str(size) for size in sizes)
    if deepest == 0:
        raise ConfigError(
            "stride",
            config.stride,
            f"a stride that divides the {what} {shape}",
            "each level divides the size by the stride exactly, so the decoder can restore it",
        )
    if config.depth > deepest:
        raise ConfigError(
            "depth",
            config.depth,
            f"at most {deepest} for {what} {shape} with stride {config.stride}",
            f"{shape} does not divide by {config.stride}**{config.depth} = "
            f"{config.stride**config.depth}, so decoder and encoder sizes would not match; "
            "lower depth or stride",
        )


def check_unet1d(config: UNet1dConfig, info: DataInfo) -> None:
    if info.kind != "sequence":
        raise ConfigError("dataset", info.name, "a sequence dataset (N, T, F)")
    _check_unet(config, (int(info.input_shape[0]),), "length")


def check_unet2d(config: UNet2dConfig, info: DataInfo) -> None:
    if info.kind != "image":
        raise ConfigError("dataset", info.name, "an image dataset (N, C, H, W)")
    _check_unet(config, tuple(int(size) for size in info.input_shape[1:]), "image size")


def build_unet1d(config: UNet1dConfig, info: DataInfo) -> UNet:
    # Sequences are not bounded to [0, 1] (mnist1d is about zero-mean, unit-std): linear output.
    return UNet(1, int(info.input_shape[-1]), config, output_activation="none")


def build_unet2d(config: UNet2dConfig, info: DataInfo) -> UNet:
    # Linear output, although pixels lie in [0, 1]: with a sigmoid and squared error, MNIST's
    # mostly black targets pushed every output to 0 within 50 steps, where the sigmoid's gradient
    # vanishes, and it never recovered (val MSE 0.114 for both seeds tried, against 0.007 linear).
    return UNet(2, int(info.input_shape[0]), config, output_activation="none")


register(
    ArchSpec(
        name="unet1d",
        task="denoise",
        config_cls=UNet1dConfig,
        builder=build_unet1d,
        data_kinds=("sequence",),
        default_dataset="mnist1d",
        train_defaults={"epochs": 10},
        description=(
            "1-D U-Net in the style of SEGAN's speech-enhancement generator: strided Conv1d layers "
            "shorten the noisy signal level by level, transposed convolutions lengthen it back, "
            "and skip connections hand each encoder level's features straight to the decoder "
            "level of the same length, so fine detail need not squeeze through the bottleneck."
        ),
        check=check_unet1d,
    )
)

register(
    ArchSpec(
        name="unet2d",
        task="denoise",
        config_cls=UNet2dConfig,
        builder=build_unet2d,
        data_kinds=("image",),
        default_dataset="mnist",
        train_defaults={"epochs": 3},
        description=(
            "Small 2-D U-Net (Ronneberger et al. 2015) for image denoising: strided convolutions "
            "halve the image per level, transposed convolutions double it back, and skip "
            "connections concatenate encoder feature maps into the decoder; a linear output "
            "estimates the clean pixels. Switch the skips off to see how much blurrier the "
            "bottleneck alone is."
        ),
        check=check_unet2d,
    )
)
