"""Look inside image classifiers: every conv layer's feature maps, first filters, probabilities."""

from __future__ import annotations

import base64
import binascii
import io
import struct
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from deeparch.errors import ConfigError, DeeparchError
from deeparch.tasks import evaluation_mode

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # a photo of a digit needs far less; refuse anything larger
# A small file can hold a huge image (a 16 KB PNG of 4096x4096 took 811 MB and 3 s to prepare):
# at most 2048 x 2048 pixels are decoded, 21 times fewer than PIL's own limit of 89 million.
MAX_UPLOAD_SIDE = 2048
JPEG_DRAFT_SCALE = 8  # a JPEG decoder shrinks by up to 8 per side while decoding
WORKING_SIDE = 512  # a decoded picture is shrunk to this many pixels a side at most
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers (baseline, progressive, lossless, ...), which carry the picture's size.
JPEG_FRAME_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
ALLOWED_FORMATS = ("PNG", "JPEG")
# A drawing reaches the server as a PNG data URL (the browser canvas's toDataURL): base64 takes 4
# characters for 3 bytes, so an upload's byte limit allows this many characters.
PNG_DATA_URL_PREFIX = "data:image/png;base64,"
MAX_DATA_URL_CHARS = len(PNG_DATA_URL_PREFIX) + 4 * (MAX_UPLOAD_BYTES // 3 + 1)
# MNIST digits sit in a 20x20 box centred in 28x28 (LeCun et al.); drawings are fitted the same way.
DIGIT_BOX_FRACTION = 20 / 28
# The ink must stand out from the background by this much of the 0-1 brightness range; a blank or
# fully transparent picture (contrast 0) or the sensor noise of a photo of empty paper has less.
MIN_INK_CONTRAST = 0.05


class UploadError(ConfigError):
    """A picture the feature-map view cannot use, said in words about the file, not a config field.

    Still a ConfigError for the `upload` field, so callers catching those keep working.
    """

    def __init__(self, value: object, message: str, allowed: str, hint: str = "") -> None:
        super().__init__("upload", value, allowed, hint)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class ImageInspection:
    """Everything the feature-map view shows for one input image, from a single forward pass."""

    input_image: np.ndarray  # (C, H, W) in [0, 1], what the model saw
    layer_names: list[str]  # conv layers in forward order
    # layer name -> (channels, h, w): the conv layer's own output, before any batch norm or
    # activation that follows it, so it has negative values (a ReLU after it would zero them)
    feature_maps: dict[str, np.ndarray]
    first_filters: np.ndarray | None  # (out_channels, in_channels, k, k) of the first conv layer
    probabilities: np.ndarray  # (num_classes,)
    predicted_class: int


def conv_layer_names(model: nn.Module) -> list[str]:
    """Names of the model's Conv2d layers in registration order (also the forward order here)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def first_conv_filters(model: nn.Module) -> np.ndarray | None:
    """Weights of the first Conv2d, (out_channels, in_channels, k, k), or None without a conv."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.weight.detach().cpu().float().numpy().copy()
    return None


def _logits_to_probabilities(logits: torch.Tensor) -> torch.Tensor:
    # A binary logistic regression returns (N, 1): turn it into two class probabilities.
    if logits.shape[-1] == 1:
        p1 = torch.sigmoid(logits)
        return torch.cat([1 - p1, p1], dim=-1)
    return torch.softmax(logits, dim=-1)


def class_probabilities(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    """Softmax of a classifier's logits for a batch (N, C, H, W) -> (N, num_classes)."""
    with evaluation_mode(model):
        return _logits_to_probabilities(model(images)).cpu().numpy()


def inspect_image(model: nn.Module, image: torch.Tensor) -> ImageInspection:
    """Run one image (C, H, W) or (1, C, H, W) through a classifier, recording every conv output.

    Forward hooks on each nn.Conv2d record its raw output, before the batch norm or activation that
    follows it (the one place defined for every architecture: in a ResNet block the activation
    comes after the shortcut is added). The hooks are removed even if the forward pass fails.
    """
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[0] != 1:
        raise DeeparchError(f"expected one image (C, H, W), got shape {tuple(image.shape)}")
    names = conv_layer_names(model)
    modules = dict(model.named_modules())
    recorded: dict[str, np.ndarray] = {}

    def make_hook(layer_name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            # (1, channels, h, w) -> (channels, h, w)
            recorded[layer_name] = output.detach()[0].cpu().float().numpy()

        return hook

    handles = [modules[name].register_forward_hook(make_hook(name)) for name in names]
    try:
        with evaluation_mode(model):
            probabilities = _logits_to_probabilities(model(image))[0].cpu().numpy()
    finally:
        for handle in handles:
            handle.remove()
    # A conv applied twice (weight sharing) records its last call; order follows the first call.
    ordered = [name for name in names if name in recorded]
    return ImageInspection(
        input_image=image[0].detach().cpu().float().numpy(),
        layer_names=ordered,
        feature_maps={name: recorded[name] for name in ordered},
        first_filters=first_conv_filters(model),
        probabilities=probabilities,
        predicted_class=int(np.argmax(probabilities)),
    )


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk or a JPEG's start-of-frame marker, read from the
    bytes themselves before any decoder runs (PIL's own check refuses a valid 20000x20000 PNG as a
    "decompression bomb" before its size can be said); None when the header is not there."""
    if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in JPEG_FRAME_MARKERS and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


def _too_large(filename: str, width: int, height: int, side: int) -> UploadError:
    return UploadError(
        filename,
        f"{filename} is too large: {width} x {height} pixels, at most {side} x {side}; crop or "
        "shrink it first (a digit needs no more than a few hundred pixels)",
        f"a picture of at most {side} x {side} pixels",
    )


def _unreadable(filename: str, why: str) -> UploadError:
    return UploadError(
        filename,
        f"{filename} could not be read as a picture: {why}; save it as PNG or JPEG and upload "
        "it again",
        "a PNG or JPEG picture",
        "the file is damaged or not a picture",
    )


def decode_upload(data: bytes, filename: str = "the file") -> Image.Image:
    """Open uploaded bytes as a PNG or JPEG image, refusing large, broken or other files.

    The size comes from the header before anything is decoded: a PNG may have at most
    MAX_UPLOAD_SIDE x MAX_UPLOAD_SIDE pixels (its decoder holds every one), a JPEG up to 8 times
    more per side, because its decoder shrinks it by up to 8 while decoding (Image.draft). The
    picture is turned upright by its EXIF orientation (phones store photos sideways) and shrunk to
    at most WORKING_SIDE pixels a side, so what follows handles a small array.
    """
    allowed = "a PNG or JPEG picture"
    if len(data) == 0:
        raise UploadError(
            filename, f"{filename} is empty (0 bytes); upload a PNG or JPEG picture", allowed
        )
    limit_mb = MAX_UPLOAD_BYTES // (1024 * 1024)
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(
            filename,
            f"{filename} is {len(data) / 1e6:.1f} MB; upload a PNG or JPEG of at most "
            f"{limit_mb} MB (a photo of one digit needs far less: crop or shrink it)",
            f"{allowed} of at most {limit_mb} MB",
        )
    size = header_size(data)
    if size is not None:
        side = MAX_UPLOAD_SIDE * (JPEG_DRAFT_SCALE if data[:2] == b"\xff\xd8" else 1)
        if size[0] * size[1] > side * side:
            raise _too_large(filename, *size, side)
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in ALLOWED_FORMATS:
            raise UploadError(
                filename,
                f"{filename} is a {image.format} file; upload a PNG or JPEG (save or export "
                "the picture in one of those formats)",
                allowed,
            )
        if image.format == "JPEG":
            image.draft(image.mode, (WORKING_SIDE, WORKING_SIDE))  # decode at 1/2, 1/4 or 1/8
        if image.width * image.height > MAX_UPLOAD_SIDE * MAX_UPLOAD_SIDE:
            raise _too_large(filename, image.width, image.height, MAX_UPLOAD_SIDE)
        image.load()
        image = ImageOps.exif_transpose(image)
        image.thumbnail((WORKING_SIDE, WORKING_SIDE))
    except UploadError:
        raise
    except Image.DecompressionBombError:
        raise _unreadable(filename, "it claims more pixels than a picture may have") from None
    except ValueError as error:
        # PIL's cap on text (zTXt, iTXt) and colour-profile (iCCP) chunks that inflate too far
        why = "a text or colour-profile chunk in it expands too far"
        if "too large" not in str(error).lower():
            why = "it is damaged or not an image"
        raise _unreadable(filename, why) from None
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, struct.error, IndexError):
        raise _unreadable(filename, "it is damaged or not an image") from None
    return image


def decode_data_url(url: object, name: str = "the drawing") -> Image.Image:
    """A PNG data URL (what a browser canvas sends) as a picture, with decode_upload's caps."""
    allowed = "a PNG data URL (data:image/png;base64,...)"
    if not isinstance(url, str) or not url.startswith(PNG_DATA_URL_PREFIX):
        shown = url[:40] if isinstance(url, str) else type(url).__name__
        raise UploadError(shown, f"{name} did not arrive as a PNG picture; draw it again", allowed)
    if len(url) > MAX_DATA_URL_CHARS:
        raise UploadError(
            f"{len(url):,} characters",
            f"{name} is too large: {len(url):,} characters, at most {MAX_DATA_URL_CHARS:,}",
            allowed,
        )
    try:
        data = base64.b64decode(url[len(PNG_DATA_URL_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise _unreadable(name, "its base64 text is damaged") from None
    return decode_upload(data, name)


def _composited(image: Image.Image) -> Image.Image:
    """An RGB picture; transparency is filled with a background that contrasts with the visible
    pixels (white behind dark strokes, black behind light ones), as _to_gray_array does."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    array = np.asarray(rgba, dtype=np.float32) / 255.0
    alpha = array[..., 3:4]
    gray = array[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    visible = alpha[..., 0] > 0.5
    light_ink = not visible.any() or float(np.median(gray[visible])) > 0.5
    background = 0.0 if light_ink or visible.all() else 1.0
    rgb = array[..., :3] * alpha + background * (1.0 - alpha)
    return Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")


def _to_gray_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Grayscale float (H, W) in [0, 1]; an alpha channel is composited over a background that
    contrasts with the visible pixels (black under light strokes, white under dark ones), so a
    dark digit on a transparent background does not vanish into black."""
    if isinstance(image, np.ndarray):
        array = image.astype(np.float32)
        if array.max() > 1.0:
            array = array / 255.0
        if array.ndim == 2:
            return array
        if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
            raise DeeparchError(f"expected an image array (H, W[, 1|3|4]), got {array.shape}")
        rgb = array[..., :3] if array.shape[2] >= 3 else np.repeat(array, 3, axis=2)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if array.shape[2] == 4:
            alpha = array[..., 3]
            visible = alpha > 0.5
            light_ink = not visible.any() or float(np.median(gray[visible])) > 0.5
            background = 0.0 if light_ink or visible.all() else 1.0
            gray = gray * alpha + background * (1.0 - alpha)
        return gray
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    return _to_gray_array(rgba)


def stretch_to_black_background(gray: np.ndarray) -> np.ndarray:
    """Map the background level (the median: paper fills most of a photo) to 0 and the ink to 1.

    A photo of paper is grey, not white; inverted, its background would stay a dark grey box that
    MNIST digits never have.
    """
    background = float(np.median(gray))
    span = float(gray.max()) - background
    if span <= 1e-6:
        return np.zeros_like(gray, dtype=np.float32)
    return np.clip((gray - background) / span, 0.0, 1.0).astype(np.float32)


def _fit_digit(gray: np.ndarray, size: int) -> np.ndarray:
    """Crop the ink's bounding box, scale its longer side to 20/28 of `size`, centre on black."""
    ink = gray > 0.1
    if not ink.any():
        return np.zeros((size, size), dtype=np.float32)
    rows, cols = np.where(ink)
    crop = gray[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    box = max(1, round(size * DIGIT_BOX_FRACTION))
    scale = box / max(crop.shape)
    new_h, new_w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    resized = Image.fromarray((crop * 255).astype(np.uint8)).resize(
        (new_w, new_h), Image.Resampling.LANCZOS
    )
    canvas = np.zeros((size, size), dtype=np.float32)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = np.asarray(resized, dtype=np.float32) / 255.0
    return canvas


def preprocess_image(
    image: Image.Image | np.ndarray,
    input_shape: tuple[int, ...],
    invert: str = "auto",
    fit_digit: bool = True,
    name: str = "the picture",
) -> torch.Tensor:
    """Turn an upload or a canvas drawing into one model input (C, H, W) float in [0, 1].

    invert: "auto" (dark ink on a light background, like a photo of paper, is inverted so the digit
    is light on black like MNIST), "yes" or "no". fit_digit crops and centres the ink like MNIST.
    Colour models (C=3) get the picture's colours; grayscale models its luminance.
    A grayscale picture without ink (blank, fully transparent, one flat colour) raises an
    UploadError naming `name`: the model would still answer, but its answer would mean nothing.
    """
    if invert not in ("auto", "yes", "no"):
        raise ConfigError("invert", invert, "one of 'auto', 'yes', 'no'")
    if len(input_shape) != 3:
        raise ConfigError("input_shape", input_shape, "an image shape (C, H, W)")
    channels, height, width = input_shape
    if channels not in (1, 3):
        raise ConfigError("input_shape", input_shape, "1 or 3 channels")
    if channels == 3 and isinstance(image, Image.Image):
        # Colour model: keep the colours, only resize (no digit fitting or inversion).
        resized = _composited(image).resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(resized, dtype=np.float32) / 255.0  # (H, W, 3)
        return torch.from_numpy(array.transpose(2, 0, 1).copy())
    gray = _to_gray_array(image)
    if invert == "yes" or (invert == "auto" and float(np.median(gray)) > 0.5):
        gray = 1.0 - gray
    contrast = float(gray.max()) - float(np.median(gray)) if gray.size else 0.0
    if contrast < MIN_INK_CONTRAST:
        raise UploadError(
            name,
            f"{name} shows no digit: it is blank (one flat colour, or fully transparent), so "
            "the network's prediction for it would mean nothing; upload a picture of a digit, "
            "light on dark or dark on light",
            "a picture with a digit on it",
        )
    gray = stretch_to_black_background(gray)
    if fit_digit and height == width:
        fitted = _fit_digit(gray, height)
    else:
        pil = Image.fromarray((np.clip(gray, 0, 1) * 255).astype(np.uint8))
        fitted = np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR)) / 255.0
    tensor = torch.from_numpy(np.clip(fitted, 0.0, 1.0).astype(np.float32))[None]  # (1, H, W)
    return tensor.repeat(channels, 1, 1)
