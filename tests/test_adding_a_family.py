"""Adding a family is adding one module: a tiny one, added to a copy of the project, shows up
everywhere (registry, gallery, layer table, drawing, Home, the README table) with nothing else
edited."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from deeparch.models import archs_in_gallery_order

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ["deeparch", "pages", "assets", "scripts", ".streamlit", "app.py", "README.md"]

TINYNET = '''"""A tiny family: one hidden layer of ReLU units on 2-D points."""

from dataclasses import dataclass

from torch import nn

from deeparch.config import hp
from deeparch.data.info import DataInfo
from deeparch.models.registry import ArchSpec, register


@dataclass(frozen=True)
class TinyConfig:
    hidden: int = hp(8, "Hidden units: enough for two moons", min=1, max=64)


def build_tinynet(config: TinyConfig, info: DataInfo) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(info.input_shape[0], config.hidden),  # (N, 2) -> (N, hidden)
        nn.ReLU(),
        nn.Linear(config.hidden, info.num_classes),  # -> (N, 2) logits
    )


register(
    ArchSpec(
        name="tinynet",
        task="classify",
        config_cls=TinyConfig,
        builder=build_tinynet,
        data_kinds=("points",),
        default_dataset="moons",
        train_defaults={"epochs": 2},
        description="A tiny network: one hidden layer of ReLU units between two linear maps.",
    )
)
'''

# Run in the copy: what the registry, the layer table, the drawing and Home make of tinynet.
PROBE = """
import json
from pathlib import Path

import deeparch
from deeparch.figures.layer_drawing import layer_stack_drawing
from deeparch.introspection.table import summarize
from deeparch.models import archs_in_gallery_order, create_model, get_arch
from deeparch.models import list_archs, list_families
from streamlit.testing.v1 import AppTest

model, config = create_model("tinynet")
at = AppTest.from_file("app.py", default_timeout=120)
at.run()
print(json.dumps({
    "deeparch": str(Path(deeparch.__file__).resolve()),
    "archs": list_archs(),
    "family": get_arch("tinynet").family,
    "families": list_families(),
    "gallery": archs_in_gallery_order(),
    "numel": sum(p.numel() for p in model.parameters()),
    "hidden": config.hidden,
    "table_total": summarize("tinynet").total_params,
    "drawing": layer_stack_drawing(summarize("tinynet")),
    "home_exceptions": [str(e.value) for e in at.exception],
    "home_titles": [m.value for m in at.markdown if m.value.startswith("#### ")],
    "home_images": len(at.image),
}))
"""


def _tree(root: Path) -> dict[str, str]:
    """Every file under root (caches aside) with a hash of its content."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def _run(args: list[str], copy: Path) -> subprocess.CompletedProcess:
    # The copy first on sys.path (and the working directory), so its deeparch is the one imported.
    env = {**os.environ, "PYTHONPATH": str(copy)}
    return subprocess.run(
        [sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_new_family_needs_only_its_module(tmp_path):
    copy = tmp_path / "project"
    for name in PROJECT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    before = _tree(copy)
    (copy / "deeparch" / "models" / "tinynet.py").write_text(TINYNET)
    assert set(_tree(copy)) - set(before) == {"deeparch/models/tinynet.py"}

    probe = _run(["-c", PROBE], copy)
    assert probe.returncode == 0, probe.stderr[-3000:]
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert Path(seen["deeparch"]).is_relative_to(copy)  # the copy's package, not this one
    assert "tinynet" in seen["archs"] and seen["family"] == "tinynet"
    # 2 inputs -> 8 hidden -> 2 classes: (2x8 + 8) + (8x2 + 2) = 42, as sum(numel) counts.
    assert seen["hidden"] == 8 and seen["numel"] == seen["table_total"] == 42
    # It declares no GALLERY_POSITION, so it comes last; the others keep their order.
    assert seen["families"][-1] == "tinynet"
    assert seen["gallery"] == [*archs_in_gallery_order(), "tinynet"]
    assert seen["drawing"].startswith("<svg") and "tinynet · input 2" in seen["drawing"]
    assert seen["home_exceptions"] == []
    # the titles are Markdown, their names escaped (logistic\_regression)
    titles = [title.replace("\\_", "_") for title in seen["home_titles"]]
    assert titles == [f"#### {arch}" for arch in seen["gallery"]]
    assert seen["home_images"] == len(seen["gallery"])  # tinynet's is drawn from its layers

    # The README table is out of date until the script writes tinynet's row.
    script = str(copy / "scripts" / "readme_tables.py")
    stale = _run([script, "--check"], copy)
    assert (
        stale.returncode == 1 and "+| `tinynet` | tinynet | classify | 42 | moons |" in stale.stdout
    )
    assert _run([script], copy).returncode == 0
    readme = (copy / "README.md").read_text()
    row = re.search(
        r"^\| `tinynet` \| tinynet \| classify \| 42 \| moons \| (.+) \|$", readme, re.M
    )
    assert row is not None and row.group(1).startswith("A tiny network")
