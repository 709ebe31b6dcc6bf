"""A model's parts by name: the top-level children a student can freeze, and freezing them.

Freezing a part sets requires_grad False on its parameters: they get no gradient, so the
training engine gives them no optimizer state and they keep their values (transfer learning's
fixed feature extractor, Yosinski et al. 2014; PyTorch's "ConvNet as fixed feature extractor").
Batch-norm running statistics are buffers, not parameters: in training mode they still follow
the new data, as in that tutorial.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from deeparch.errors import ConfigError


def top_level_parts(model: nn.Module) -> list[str]:
    """The names of the model's direct children that hold parameters, in order."""
    return [
        name for name, child in model.named_children() if next(child.parameters(), None) is not None
    ]


def parse_part_names(text: str | Iterable[str]) -> list[str]:
    """ "features, classifier" (or a list) as names, blanks dropped, each once, in order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return list(dict.fromkeys(item.strip() for item in items if item.strip()))


def freeze_parts(model: nn.Module, names: str | Iterable[str], field: str = "freeze") -> int:
    """Freeze the named parts (a top-level child or any dotted module name); returns how many
    parameters (elements) are frozen. An unknown name is a ConfigError listing the parts."""
    modules = dict(model.named_modules())
    frozen = 0
    for name in parse_part_names(names):
        module = modules.get(name)
        if module is None or not name:
            parts = ", ".join(top_level_parts(model)) or "none"
            raise ConfigError(
                field, name, f"a part of the model by name: {parts} (or a dotted sub-module name)"
            )
        for param in module.parameters():
            if param.requires_grad:
                frozen += param.numel()
            param.requires_grad_(False)
    if names and not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(
            field,
            ",".join(parse_part_names(names)),
            "parts that leave something to train",
            "every parameter would be frozen",
        )
    return frozen
