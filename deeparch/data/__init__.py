"""Datasets by name, as in-memory tensors with a fixed stratified split (offline sources first)."""

from deeparch.data.catalogue import (  # noqa: F401  (the package's public API)
    DEFAULT_DATASET,
    Dataset,
    clear_cache,
    dataset_info,
    dataset_label,
    dataset_missing,
    dataset_options,
    default_data_root,
    list_datasets,
    load_dataset,
)
from deeparch.data.info import DATA_KINDS, EXAMPLE_INFO, DataInfo  # noqa: F401
