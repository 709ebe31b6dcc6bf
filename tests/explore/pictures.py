"""Pictures as a browser sends them, for the upload and drawing tests."""

import io

import numpy as np
from PIL import Image


def png(pixels: np.ndarray) -> bytes:
    """uint8 pixels (H, W) or (H, W, 3) as PNG file bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
