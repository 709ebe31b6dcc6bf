"""A dataset picker that marks the datasets whose files are not in the data folder yet, and says
where to put them (before Start, not after it fails)."""

from typing import Any

from deeparch.data import dataset_label, dataset_missing
from deeparch.figures.text import escape_markdown


def dataset_picker(container: Any, datasets: list[str], key: str) -> tuple[str, str]:
    """(the chosen dataset, '' or what is missing); a missing dataset's note shows below."""
    dataset = container.selectbox("dataset", datasets, key=key, format_func=dataset_label)
    missing = dataset_missing(dataset)
    if missing:
        container.warning(
            escape_markdown(
                f"{dataset} is not available yet: {missing}. Nothing is downloaded here; "
                "set DEEPARCH_DATA_DIR to use another data folder."
            )
        )
    return dataset, missing
