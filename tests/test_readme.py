"""The README's architecture table is the one the registry generates, with real parameter counts."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from deeparch.introspection.table import summarize
from deeparch.models.registry import list_archs

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", list_archs())
def test_readme_lists_each_architecture_with_its_parameter_count(name):
    row = re.search(rf"^\| `{name}` \| [^|]+\| [^|]+\| ([\d,]+) \|", README, flags=re.MULTILINE)
    assert row is not None, f"{name} is missing from the README's architecture table"
    assert int(row.group(1).replace(",", "")) == summarize(name).total_params


def test_readme_architecture_table_is_the_generated_one():
    # The script counts sum(numel) of each built model; the test above counts the layer table.
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_tables.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_readme_says_how_to_add_an_architecture():
    headings = re.findall(r"^## (.+)$", README, flags=re.MULTILINE)
    assert headings.index("Development") == headings.index("Tests") - 1
    development = README.split("## Development", 1)[1].split("## Tests", 1)[0]
    # The names it gives are the code's (a rename leaves the README stale and fails here).
    for name in ("GALLERY_POSITION", "scripts/readme_tables.py", "figures/layer_drawing.py"):
        assert name in development
