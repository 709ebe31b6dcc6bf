"""Draw one small SVG per architecture family into assets/.

Run: python -m deeparch.figures.diagrams
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from deeparch.figures.svg import (
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    PURPLE,
    RED,
    TEAL,
    Drawing,
    chain,
)

logger = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"  # the repository's assets/


def draw_mlp() -> str:
    d = Drawing("MLP: fully connected layers")
    layers = [(40, 6, BLUE, "784"), (130, 5, ORANGE, "500"), (220, 4, ORANGE, "200"),
              (310, 3, GREEN, "10")]  # fmt: skip
    positions = []
    for x, count, _colour, label in layers:
        ys = [55 + i * (110 / max(count - 1, 1)) for i in range(count)]
        positions.append([(x, y) for y in ys])
        d.text(x, 190, label)
    for left, right in zip(positions[:-1], positions[1:]):
        for x1, y1 in left:
            for x2, y2 in right:
                d.line(x1, y1, x2, y2, width=0.5)
    for (_, _count, colour, _), column in zip(layers, positions):
        for x, y in column:
            d.circle(x, y, 8, colour)
    return d.svg()


def draw_cnn() -> str:
    d = Drawing("CNN: conv + pool, then dense")
    d.box(12, 60, 50, 50, BLUE, "28×28")
    for i in range(3):
        d.box(90 + i * 6, 55 + i * 6, 40, 40, ORANGE)
    d.text(118, 130, "conv 3×3")
    for i in range(4):
        d.box(165 + i * 5, 70 + i * 5, 24, 24, TEAL)
    d.text(190, 130, "max-pool")
    d.box(240, 45, 18, 100, PURPLE)
    d.text(249, 160, "flatten")
    d.box(290, 75, 55, 40, GREEN, "dense 10")
    chain(d, [62, 88], 85)
    chain(d, [142, 163], 85)
    chain(d, [210, 238], 90)
    chain(d, [258, 288], 95)
    return d.svg()


def draw_resnet() -> str:
    d = Drawing("ResNet: residual blocks, y = F(x) + x")
    d.box(20, 80, 60, 36, BLUE, "x")
    d.box(120, 80, 70, 36, ORANGE, "conv-BN-ReLU")
    d.box(210, 80, 60, 36, ORANGE, "conv-BN")
    d.circle(300, 98, 12, GREEN)
    d.text(300, 102, "+", size=14, weight="bold")
    d.text(340, 102, "ReLU")
    chain(d, [80, 118], 98)
    chain(d, [190, 208], 98)
    chain(d, [270, 286], 98)
    d.path("M 50 80 C 50 40, 300 40, 300 84", colour=GREEN)
    d.text(175, 48, "identity shortcut", colour=GREEN)
    return d.svg()


def draw_rnn() -> str:
    d = Drawing("Elman RNN unrolled: h_t = tanh(W·x_t + U·h_(t-1))")
    for t in range(4):
        x = 30 + t * 82
        d.box(x, 80, 56, 36, ORANGE, f"cell t{t + 1}")
        d.box(x + 13, 150, 30, 24, BLUE, f"x{t + 1}")
        d.line(x + 28, 150, x + 28, 118, arrow=True)
        if t < 3:
            d.line(x + 56, 98, x + 80, 98, arrow=True)
    d.text(300, 70, "h_t")
    d.box(290, 30, 50, 24, GREEN, "logits")
    d.line(314, 80, 314, 56, arrow=True)
    return d.svg()


def draw_qrnn() -> str:
    d = Drawing("QRNN: conv gates + recurrent pooling")
    d.box(20, 150, 320, 24, BLUE, "sequence x1 ... xT")
    d.box(20, 100, 320, 28, ORANGE, "causal conv1d → candidate z, forget f, output o")
    for t in range(5):
        x = 45 + t * 64
        d.circle(x, 60, 12, GREEN)
        if t < 4:
            d.line(x + 12, 60, x + 52, 60, arrow=True)
    d.text(180, 38, "h_t = f ⊙ h_(t-1) + (1 − f) ⊙ z   (fo-pooling)")
    d.line(180, 150, 180, 130, arrow=True)
    d.line(180, 100, 180, 74, arrow=True)
    return d.svg()


def draw_tcn() -> str:
    d = Drawing("TCN: dilated causal convolutions")
    levels = [(165, 1, BLUE), (120, 1, ORANGE), (75, 2, ORANGE), (40, 4, GREEN)]
    xs = [25 + i * 21 for i in range(14)]
    for level, (y, dilation, colour) in enumerate(levels):
        for x in xs:
            d.circle(x, y, 4, colour)
        if level > 0:
            below_y = levels[level - 1][0]
            for i in range(len(xs)):
                if i - dilation >= 0:
                    d.line(xs[i - dilation], below_y, xs[i], y, width=0.6)
                d.line(xs[i], below_y, xs[i], y, width=0.6)
    for (y, _dilation, _), name in zip(levels, ["input", "d=1", "d=2", "d=4"]):
        d.text(345, y + 4, name)
    return d.svg()


def draw_unet() -> str:
    d = Drawing("U-Net: encoder, decoder, skip connections")
    levels = [(20, 35, 60), (65, 80, 44), (110, 120, 30)]  # (x, top, height) going down
    for x, top, height in levels:
        mirror = 340 - x - 30
        d.box(x, top, 30, height, BLUE)
        d.box(mirror, top, 30, height, GREEN)
        d.path(f"M {x + 30} {top + 8} L {mirror} {top + 8}", colour=TEAL, dashed=True)
    d.box(155, 158, 50, 24, PURPLE, "bottleneck")
    d.path("M 125 150 L 153 168", colour=GREY)
    d.path("M 205 168 L 233 150", colour=GREY)
    d.text(60, 192, "down: conv + pool")
    d.text(300, 192, "up: transposed conv")
    d.text(180, 30, "skips: concatenate", colour=TEAL)
    return d.svg()


def draw_autoencoder() -> str:
    # Shared by the dense, deep and linear autoencoders: no layer widths, as theirs differ.
    d = Drawing("Autoencoder: x → small code → x̂")
    d.trapezoid(30, 40, 110, 120, 30, BLUE, "encoder")
    d.box(160, 82, 40, 36, PURPLE, "code")
    d.trapezoid(220, 40, 110, 30, 120, GREEN, "decoder")
    d.text(30, 180, "image x")
    d.text(180, 140, "few numbers")
    d.text(330, 180, "x̂ ≈ x")
    chain(d, [140, 158], 100)
    chain(d, [200, 218], 100)
    return d.svg()


def draw_sparse_autoencoder() -> str:
    d = Drawing("Sparse AE: a wide code, few units active")
    d.trapezoid(20, 60, 70, 80, 80, BLUE, "encoder")
    for i in range(9):
        active = i in (2, 6)
        d.circle(140, 36 + i * 16, 6, ORANGE if active else GREY)
    d.text(140, 192, "code")
    d.trapezoid(190, 60, 70, 80, 80, GREEN, "decoder")
    chain(d, [90, 130], 100)
    chain(d, [150, 188], 100)
    d.text(310, 90, "loss = recon")
    d.text(310, 106, "+ λ·|code|")
    return d.svg()


def draw_conv_autoencoder() -> str:
    d = Drawing("Conv AE: stride-2 convs down, transposed up")
    sizes = [(12, 60), (52, 44), (84, 30)]
    for x, side in sizes:
        d.box(x, 100 - side / 2, side * 0.6, side, BLUE)
    d.box(122, 85, 30, 30, PURPLE, "code")
    for x, side in [(164, 30), (190, 44), (222, 60)]:
        d.box(x, 100 - side / 2, side * 0.6, side, GREEN)
    d.box(280, 70, 60, 60, GREEN, "x̂")
    chain(d, [110, 120], 100)
    chain(d, [152, 162], 100)
    chain(d, [258, 278], 100)
    d.text(60, 150, "conv, stride 2")
    d.text(220, 150, "conv-transpose")
    return d.svg()


def draw_linear_autoencoder() -> str:
    d = Drawing("Linear AE: x̂ = D·E·x (like PCA)")
    d.box(20, 60, 40, 80, BLUE, "x")
    d.box(95, 70, 70, 60, ORANGE, "E (linear)")
    d.box(195, 88, 30, 24, PURPLE, "z")
    d.box(255, 70, 50, 60, ORANGE, "D")
    d.box(320, 60, 30, 80, GREEN, "x̂")
    chain(d, [60, 93], 100)
    chain(d, [165, 193], 100)
    chain(d, [225, 253], 100)
    chain(d, [305, 318], 100)
    d.text(180, 175, "no nonlinearity: it learns the top principal subspace")
    return d.svg()


def draw_vae() -> str:
    d = Drawing("VAE: z = μ + σ·ε, loss = BCE + β·KL")
    d.trapezoid(15, 40, 90, 120, 40, BLUE, "encoder")
    d.box(120, 58, 44, 26, ORANGE, "μ")
    d.box(120, 116, 44, 26, ORANGE, "log σ²")
    d.box(190, 85, 40, 30, PURPLE, "z")
    d.text(210, 150, "ε ~ N(0, I)")
    d.trapezoid(250, 40, 95, 40, 120, GREEN, "decoder")
    d.line(105, 90, 118, 72, arrow=True)
    d.line(105, 110, 118, 128, arrow=True)
    d.line(164, 72, 188, 95, arrow=True)
    d.line(164, 128, 188, 106, arrow=True)
    d.line(230, 100, 248, 100, arrow=True)
    return d.svg()


def draw_gan() -> str:
    d = Drawing("GAN: generator vs discriminator")
    d.box(15, 50, 40, 30, PURPLE, "z")
    d.trapezoid(70, 35, 80, 30, 70, GREEN, "G")
    d.box(170, 50, 50, 36, BLUE, "fake")
    d.box(170, 120, 50, 36, BLUE, "real")
    d.trapezoid(240, 60, 70, 90, 30, ORANGE, "D")
    d.text(335, 110, "real?")
    chain(d, [55, 68], 65)
    chain(d, [150, 168], 68)
    d.line(220, 68, 238, 95, arrow=True)
    d.line(220, 138, 238, 115, arrow=True)
    d.line(310, 105, 320, 105, arrow=True)
    return d.svg()


def _gated_cell(title: str, gates: list[str], cell_state: bool) -> str:
    """One gated recurrent cell: its gates, and the states that flow on to the next step."""
    d = Drawing(title)
    d.box(20, 150, 40, 26, BLUE, "x_t")
    d.box(20, 90, 40, 26, TEAL, "h_(t-1)")
    for i, gate in enumerate(gates):
        d.box(90 + i * 62, 100, 54, 30, ORANGE, gate)
        d.line(60, 163, 117 + i * 62, 130, width=0.6)
        d.line(60, 100, 117 + i * 62, 100, width=0.6)
    d.box(300, 100, 48, 30, TEAL, "h_t")
    chain(d, [90 + len(gates) * 62 - 8, 298], 115)
    if cell_state:
        d.line(20, 55, 340, 55, colour=PURPLE, width=2.0, arrow=True)
        d.text(180, 48, "cell state c_t: only scaled (forget) and added to (input)", colour=PURPLE)
    else:
        d.text(180, 62, "one state; the update gate z mixes old h and the candidate")
    d.box(300, 160, 48, 24, GREEN, "logits")
    d.line(324, 130, 324, 158, arrow=True)
    return d.svg()


def draw_lstm() -> str:
    return _gated_cell(
        "LSTM cell: three gates and a cell state", ["forget f", "input i", "output o"], True
    )


def draw_gru() -> str:
    return _gated_cell(
        "GRU cell: two gates, one state", ["reset r", "update z", "candidate"], False
    )


def draw_cgan() -> str:
    d = Drawing("Conditional GAN: both networks see the label y")
    d.box(15, 40, 40, 28, PURPLE, "z")
    d.box(15, 80, 40, 28, RED, "y")
    d.trapezoid(70, 35, 80, 30, 70, GREEN, "G(z, y)")
    d.box(170, 50, 50, 36, BLUE, "fake")
    d.box(170, 120, 50, 36, BLUE, "real")
    d.trapezoid(240, 60, 70, 90, 30, ORANGE, "D(x, y)")
    d.text(335, 110, "real?")
    chain(d, [55, 68], 54)
    chain(d, [55, 68], 94)
    chain(d, [150, 168], 68)
    d.line(220, 68, 238, 95, arrow=True)
    d.line(220, 138, 238, 115, arrow=True)
    d.line(310, 105, 320, 105, arrow=True)
    d.path("M 35 108 L 35 185 L 275 185 L 275 147", colour=RED)
    d.text(150, 180, "label y, embedded", colour=RED)
    return d.svg()


def draw_dcgan() -> str:
    d = Drawing("DCGAN: transposed convs up, strided convs down")
    d.box(12, 85, 20, 30, PURPLE, "z")
    for i, side in enumerate([20, 36, 56]):
        d.box(45 + i * 32, 100 - side / 2, 24, side, GREEN)
    d.text(92, 150, "G: ConvT + BN + ReLU, tanh")
    d.box(150, 72, 44, 56, BLUE, "image")
    for i, side in enumerate([56, 36, 20]):
        d.box(212 + i * 32, 100 - side / 2, 24, side, ORANGE)
    d.box(320, 88, 30, 24, ORANGE, "real?")
    d.text(262, 150, "D: strided conv + LeakyReLU")
    chain(d, [32, 43], 100)
    chain(d, [133, 148], 100)
    chain(d, [194, 210], 100)
    chain(d, [300, 318], 100)
    return d.svg()


def draw_alexnet() -> str:
    d = Drawing("AlexNet (small): 5 convs, 3 pools, 3 dense + dropout")
    for i in range(5):
        side = 70 - i * 9
        d.box(16 + i * 38, 100 - side / 2, 28, side, ORANGE if i else BLUE, f"c{i + 1}")
    for x in (50, 88, 202):
        d.text(x, 162, "pool", size=9)
    for i in range(3):
        d.box(220 + i * 42, 70 + i * 8, 30, 60 - i * 16, GREEN, "fc" if i < 2 else "10")
    chain(d, [206, 218], 100)
    d.text(180, 185, "ReLU after every layer; dropout before the dense layers")
    return d.svg()


def draw_unet1d() -> str:
    d = Drawing("1-D U-Net: strided Conv1d down, skips, up")
    levels = [(20, 40, 120), (60, 60, 80), (100, 76, 48)]  # (x, top, height): shorter signals
    for x, top, height in levels:
        mirror = 340 - x - 18
        d.box(x, top, 18, height, BLUE)
        d.box(mirror, top, 18, height, GREEN)
        d.path(f"M {x + 18} {top + 6} L {mirror} {top + 6}", colour=TEAL, dashed=True)
    d.box(150, 85, 60, 30, PURPLE, "bottleneck")
    d.text(180, 185, "noisy signal in, clean estimate out (MSE)")
    d.text(180, 34, "skips: concatenate", colour=TEAL)
    return d.svg()


def _single_layer(title: str, outputs: int, output_label: str) -> str:
    d = Drawing(title)
    inputs = [55 + i * 22 for i in range(6)]
    outs = [100 - (outputs - 1) * 15 + i * 30 for i in range(outputs)]
    for y1 in inputs:
        for y2 in outs:
            d.line(80, y1, 250, y2, width=0.6)
    for y in inputs:
        d.circle(80, y, 8, BLUE)
    for y in outs:
        d.circle(250, y, 10, GREEN)
    d.text(80, 190, "inputs x")
    d.text(250, 190, "z = Wx + b")
    d.text(320, 104, output_label)
    return d.svg()


def draw_logistic_regression() -> str:
    return _single_layer("Logistic regression: one unit", 1, "sigmoid")


def draw_softmax_regression() -> str:
    return _single_layer("Softmax regression: one layer", 4, "softmax")


def draw_plainnet() -> str:
    d = Drawing("Plain net: the ResNet without shortcuts")
    d.box(20, 80, 60, 36, BLUE, "x")
    d.box(120, 80, 70, 36, ORANGE, "conv-BN-ReLU")
    d.box(210, 80, 60, 36, ORANGE, "conv-BN")
    d.box(290, 80, 50, 36, GREEN, "ReLU")
    chain(d, [80, 118], 98)
    chain(d, [190, 208], 98)
    chain(d, [270, 288], 98)
    d.path("M 50 80 C 50 40, 300 40, 300 78", colour=RED, dashed=True, arrow=False)
    d.text(175, 48, "no identity shortcut: deep stacks train worse", colour=RED)
    return d.svg()


def draw_denoising_autoencoder() -> str:
    d = Drawing("Denoising AE: noisy x → code → clean x")
    d.box(10, 75, 34, 50, GREY, "x+ε")
    d.trapezoid(55, 40, 95, 120, 30, BLUE, "encoder")
    d.box(160, 82, 40, 36, PURPLE, "code")
    d.trapezoid(210, 40, 95, 30, 120, GREEN, "decoder")
    d.box(315, 75, 34, 50, GREEN, "x̂")
    chain(d, [44, 53], 100)
    chain(d, [150, 158], 100)
    chain(d, [200, 208], 100)
    chain(d, [305, 313], 100)
    d.text(180, 185, "loss: x̂ against the clean x")
    return d.svg()


def draw_inception() -> str:
    # Laid out like Szegedy et al. 2015, Fig. 2b: input at the bottom, outputs concatenated on top.
    d = Drawing("Inception module: four branches, concatenated")
    d.box(12, 30, 334, 22, GREEN, "concatenate")
    d.box(12, 168, 334, 22, BLUE, "previous layer")
    branches = [("1×1 conv", ORANGE, ""), ("1×1 reduce", PURPLE, "3×3 conv"),
                ("1×1 reduce", PURPLE, "5×5 conv"), ("3×3 max-pool", TEAL, "1×1 proj")]  # fmt: skip
    for i, (first, colour, second) in enumerate(branches):
        x = 12 + 86 * i
        centre = x + 38
        d.box(x, 118, 76, 26, colour, first)
        d.line(centre, 168, centre, 146, arrow=True)
        if second:
            d.box(x, 72, 76, 26, ORANGE, second)
            d.line(centre, 118, centre, 100, arrow=True)
        d.line(centre, 72 if second else 118, centre, 54, arrow=True)
    return d.svg()


DRAWERS: dict[str, Callable[[], str]] = {
    "mlp": draw_mlp, "cnn": draw_cnn, "resnet": draw_resnet, "rnn": draw_rnn,
    "qrnn": draw_qrnn, "tcn": draw_tcn, "unet": draw_unet, "autoencoder": draw_autoencoder,
    "vae": draw_vae, "gan": draw_gan,
    # Architectures that look unlike the rest of their family get a drawing of their own.
    "logistic_regression": draw_logistic_regression, "softmax_regression": draw_softmax_regression,
    "plainnet": draw_plainnet, "denoising_autoencoder": draw_denoising_autoencoder,
    "sparse_autoencoder": draw_sparse_autoencoder, "conv_autoencoder": draw_conv_autoencoder,
    "linear_autoencoder": draw_linear_autoencoder, "lstm": draw_lstm, "gru": draw_gru,
    "cgan": draw_cgan, "dcgan": draw_dcgan, "alexnet": draw_alexnet, "unet1d": draw_unet1d,
    "inception": draw_inception,
}  # fmt: skip


def asset_path(family: str, assets_dir: Path = ASSETS_DIR) -> Path:
    """Where the drawing of a family lives."""
    return assets_dir / f"{family}.svg"


def asset_for(arch: str, family: str, assets_dir: Path = ASSETS_DIR) -> Path | None:
    """The drawing an architecture has in assets/: its own, else its family's, else None (a
    family needs none: figures.layer_drawing draws any architecture from its layer table)."""
    for name in (arch, family):
        path = asset_path(name, assets_dir)
        if path.exists():
            return path
    return None


def write_all(assets_dir: Path = ASSETS_DIR) -> list[Path]:
    """Write every family's drawing; returns the paths written."""
    assets_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for family, draw in DRAWERS.items():
        path = asset_path(family, assets_dir)
        path.write_text(draw(), encoding="utf-8")
        written.append(path)
        logger.info("wrote %s", path)
    return written


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else ASSETS_DIR)
