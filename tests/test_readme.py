"""The README's architecture table states the parameter counts the registry really builds."""

import re
from pathlib import Path

import pytest

from deeparch.introspection.table import summarize
from deeparch.models.registry import list_archs

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("name", list_archs())
def test_readme_lists_each_architecture_with_its_parameter_count(name):
    row = re.search(rf"^\| `{name}` \| [^|]+\| [^|]+\| ([\d,]+) \|", README, flags=re.MULTILINE)
    assert row is not None, f"{name} is missing from the README's architecture table"
    assert int(row.group(1).replace(",", "")) == summarize(name).total_params
