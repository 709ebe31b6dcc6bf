"""A dataset narrowed to some of its classes: transfer learning's "train on digits 0-4, then
5-9" (Yosinski et al. 2014). The chosen classes are relabelled 0..k-1 in the order given, so a
model built for the subset has a head of k outputs, one per chosen class."""

from __future__ import annotations

import dataclasses

import torch

from deeparch.data.catalogue import Dataset
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError


def parse_classes(text: str, info: DataInfo, field: str = "classes") -> tuple[int, ...]:
    """ "0,1,2,3,4" as class labels of the dataset, each once, at least two; empty: ()."""
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        return ()
    allowed = f"comma-separated labels of {info.name}'s classes, 0 to {info.num_classes - 1}"
    if info.num_classes < 2 or info.target_shape:
        raise ConfigError(field, text, f"empty: {info.name} is not a set of classes")
    if not all(item.isdigit() for item in items):
        raise ConfigError(field, text, allowed)
    labels = tuple(int(item) for item in items)
    if max(labels) >= info.num_classes:
        raise ConfigError(field, text, allowed, f"{info.name} has no class {max(labels)}")
    if len(set(labels)) != len(labels):
        raise ConfigError(field, text, allowed + ", each once")
    if len(labels) < 2:
        raise ConfigError(field, text, allowed + ", at least two (one class is nothing to tell)")
    return labels


def subset_info(info: DataInfo, labels: tuple[int, ...]) -> DataInfo:
    """The DataInfo of the subset: len(labels) classes, named as the originals."""
    names = tuple(info.class_names[label] if info.class_names else str(label) for label in labels)
    return dataclasses.replace(info, num_classes=len(labels), class_names=names)


def select_classes(data: Dataset, labels: tuple[int, ...]) -> Dataset:
    """Only the samples of `labels`, relabelled 0..k-1 in that order (new tensors: the cached
    dataset is shared and stays whole); `()` returns the dataset itself."""
    if not labels:
        return data
    relabel = torch.full((data.info.num_classes,), -1, dtype=torch.long)
    relabel[torch.tensor(labels)] = torch.arange(len(labels))

    def keep(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.nonzero(relabel[y] >= 0).flatten()
        return x.index_select(0, index), relabel[y.index_select(0, index)]

    x_train, y_train = keep(data.x_train, data.y_train)
    x_val, y_val = keep(data.x_val, data.y_val)
    return Dataset(x_train, y_train, x_val, y_val, subset_info(data.info, labels), data.options)
