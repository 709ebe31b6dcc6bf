"""pyproject.toml installs what requirements.txt lists, one version, and a working `deeparch`."""

import importlib
import re
import tomllib
from pathlib import Path

import deeparch

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements_txt() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split(" #")[0].strip() for line in lines if line.strip() and line[0] != "#"]


def test_pyproject_dependencies_are_requirements_txt():
    def spelled(requirement: str) -> str:
        return requirement.replace(" ", "").lower()

    as_pyproject = sorted(spelled(r) for r in PYPROJECT["project"]["dependencies"])
    assert as_pyproject == sorted(spelled(r) for r in requirements_txt())


def test_the_version_has_one_source():
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert "version" not in PYPROJECT["project"]  # written only in deeparch/__init__.py
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "deeparch.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", deeparch.__version__)


def test_the_deeparch_command_resolves_to_the_cli(capsys):
    target = PYPROJECT["project"]["scripts"]["deeparch"]
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    assert callable(command)
    assert command(["list", "--format", "json"]) == 0  # what `deeparch list` runs once installed
    assert '"architectures"' in capsys.readouterr().out


def test_setuptools_builds_only_the_library():
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"
    # the Streamlit app (app.py, pages/), tests/ and scripts/ stay out of the installed package
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == ["deeparch*"]
