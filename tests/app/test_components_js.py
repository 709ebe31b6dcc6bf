"""The browser components' JavaScript (pages/_components/common.js) run in Node against deeparch.

The payload a page sends is read back by the same unpacking the browser runs; the decoder the
browser runs gives the pixels torch gives; the grid cell it picks is the grid point
latent_grid_points put there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from deeparch.data.info import EXAMPLE_INFO
from deeparch.explore import latent
from deeparch.explore.payload import pack, to_uint8
from deeparch.models import create_model

COMMON = Path(__file__).resolve().parents[2] / "pages" / "_components" / "common.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="no node on PATH")


def run_js(tmp_path: Path, body: str, blob: bytes) -> object:
    """Run common.js plus `body` (which sees `bytes`, a Uint8Array of blob) and parse its print."""
    (tmp_path / "blob.bin").write_bytes(blob)
    script = tmp_path / "harness.mjs"
    script.write_text(
        "import { readFileSync } from 'node:fs';\n"
        "globalThis.window = globalThis;\n"
        + COMMON.read_text(encoding="utf-8")
        + "\nconst file = readFileSync(process.argv[2]);\n"
        # A view into a larger buffer, as a protobuf field is: offsets must be honoured.
        "const padded = new Uint8Array(file.length + 3); padded.set(file, 3);\n"
        "const bytes = padded.subarray(3);\n" + body,
        encoding="utf-8",
    )
    done = subprocess.run(
        [NODE, str(script), str(tmp_path / "blob.bin")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_browser_reads_both_packs_of_a_payload(tmp_path):
    weights = np.linspace(-2, 2, 9, dtype=np.float32)
    grid = np.arange(12, dtype=np.uint8).reshape(3, 4)
    blob = pack({"serial": 3, "start": [0.5, -1]}) + pack(
        {"name": "job@7"},
        {"grid": grid, "weights": weights, "labels": np.arange(3, dtype=np.int32)},
    )
    out = run_js(
        tmp_path,
        "const [a, b] = unpackAll(bytes);\n"
        "const heads = unpackAll(bytes, false);\n"
        "console.log(JSON.stringify({a: a.header, b: b.header,"
        " grid: Array.from(b.arrays.grid.data),"
        " shape: b.arrays.grid.shape, weights: Array.from(b.arrays.weights.data),"
        " labels: Array.from(b.arrays.labels.data), heads: heads.map((p) => p.header),"
        " lazy: Object.keys(heads[1].arrays).length}));",
        blob,
    )
    assert out["a"] == {"serial": 3, "start": [0.5, -1]} and out["b"] == {"name": "job@7"}
    assert out["grid"] == grid.ravel().tolist() and out["shape"] == [3, 4]
    assert np.allclose(out["weights"], weights) and out["labels"] == [0, 1, 2]
    assert out["heads"] == [out["a"], out["b"]] and out["lazy"] == 0


def test_the_browsers_decoder_paints_the_pixels_torch_decodes(tmp_path):
    torch.manual_seed(0)  # this test's own model; no job runs in this process
    model, _ = create_model(
        "vae", {"latent_dim": 3, "hidden_sizes": (64, 32)}, EXAMPLE_INFO["image"]
    )
    model.eval()
    means = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    header, arrays = latent.explorer_payload(
        model, means, np.zeros(50, int), (), (1, 28, 28), "j", 1
    )
    zs = np.array([[0.0, 0.0, 0.0], [1.5, -2.0, 0.25], [-3.9, 3.9, 1.0]], dtype=np.float32)
    out = run_js(
        tmp_path,
        "const [p] = unpackAll(bytes);\n"
        "const decode = mlpDecoder(p.header.layers, p.arrays.weights.data);\n"
        f"const zs = {json.dumps(zs.tolist())};\n"
        "const paint = (z) => Array.from(toPixels(decode(Float32Array.from(z)), 1, 28, 28));\n"
        "console.log(JSON.stringify(zs.map(paint)));",
        pack(header, arrays),
    )
    expected = to_uint8(latent.decode(model, zs)).reshape(3, -1).astype(int)
    assert np.abs(np.array(out) - expected).max() <= 1  # float32 sums in another order
    assert (np.array(out) == expected).mean() > 0.99


def test_the_browser_picks_the_grid_point_the_server_decoded_there(tmp_path):
    grid = {"side": 8, "z1": [-1.5, 2.0], "z2": [-3.0, 0.5]}
    points = latent.latent_grid_points(-1.5, 2.0, 8, (-3.0, 0.5))  # row-major, z2 down the rows
    rng = np.random.default_rng(2)
    zs = np.concatenate([rng.uniform(-2, 2.5, (40, 1)), rng.uniform(-3.5, 1.0, (40, 1))], axis=1)
    out = run_js(
        tmp_path,
        f"const grid = {json.dumps(grid)};\n"
        f"console.log(JSON.stringify({json.dumps(zs.tolist())}.map((z) => gridCell(z, grid))));",
        b"",
    )
    for z, cell in zip(zs, out):
        point = points[cell["row"] * 8 + cell["column"]]
        assert np.allclose(cell["point"], point, atol=1e-6)
        nearest = np.argmin(((points - np.clip(z, [-1.5, -3.0], [2.0, 0.5])) ** 2).sum(axis=1))
        assert cell["row"] * 8 + cell["column"] == nearest
