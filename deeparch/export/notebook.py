"""A training run as a Jupyter notebook (nbformat): the script's sections as cells, with the
deeparch source of the architecture beside the plain layers it was written as."""

from __future__ import annotations

import nbformat
from nbformat import v4

from deeparch.engine.config import TrainConfig
from deeparch.export.script import export_parts


def export_notebook(config: TrainConfig) -> str:
    """The notebook's JSON text (nbformat 4), validated."""
    parts = export_parts(config)
    header = parts["header"]
    docstring, _, imports = header.partition('"""\n\n')
    cells = [
        v4.new_markdown_cell("# " + docstring.strip('"').strip().replace("\n", "\n\n", 1)),
        v4.new_code_cell(imports.strip()),
        v4.new_markdown_cell("## Data\nThe same stratified train/validation split as deeparch."),
        v4.new_code_cell(parts["data"].strip()),
        v4.new_markdown_cell(
            "## Model\nThe architecture's layers in order, named as in deeparch, so a deeparch "
            "checkpoint's weights load into it."
        ),
        v4.new_code_cell(parts["model"].strip()),
        v4.new_markdown_cell(
            "## Training\nThe engine's loop: seeded batch order, same update rule."
        ),
        v4.new_code_cell(parts["training"].split('\n\nif __name__ == "__main__":')[0].strip()),
        v4.new_code_cell("main(MAX_STEPS)"),
    ]
    if parts["original_source"]:
        cells.append(
            v4.new_markdown_cell(
                "## The deeparch class these layers come from\n\n```python\n"
                + parts["original_source"].strip()
                + "\n```"
            )
        )
    notebook = v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}  # fmt: skip
    nbformat.validate(notebook)
    return nbformat.writes(notebook)
