"""An architecture written out as plain PyTorch: nested nn.Sequential blocks with the same layer
names (so a deeparch checkpoint's state_dict loads into it), checked against the original."""

from __future__ import annotations

import inspect
from collections import OrderedDict

import torch
from torch import nn

from deeparch.errors import ConfigError
from deeparch.randomness import Dropout

INDENT = "    "


def module_code(module: nn.Module, depth: int = 1) -> str:
    """The constructor call that builds `module`: a leaf's own repr (nn.Linear(...)), or a
    Sequential of its children in order."""
    children = list(module.named_children())
    if isinstance(module, Dropout):
        # deeparch's Dropout draws its masks from the job's generator: the script defines a
        # Dropout of the same name that draws them from the run's own (script_options.dropout_code).
        return repr(module)
    if not children:
        return f"nn.{module!r}"  # a PyTorch layer's repr is its constructor call
    pad = INDENT * depth
    lines = [f'{pad}("{name}", {module_code(child, depth + 1)}),' for name, child in children]
    return "nn.Sequential(OrderedDict([\n" + "\n".join(lines) + f"\n{INDENT * (depth - 1)}]))"


def build_from_code(code: str) -> nn.Module:
    """Evaluate generated model code as the exported script will."""
    namespace = {"nn": nn, "torch": torch, "OrderedDict": OrderedDict, "Dropout": Dropout}
    return eval(code, namespace)  # noqa: S307  (code we generated ourselves, never user input)


def checked_model_code(model: nn.Module, arch: str, example: torch.Tensor) -> str:
    """The code of `model`, refused (ConfigError naming the architecture) unless the plain
    version computes the same outputs with the same weights, so an exported run is the run."""
    try:
        code = module_code(model)
        plain = build_from_code(code)
        plain.load_state_dict(model.state_dict())
    except (SyntaxError, NameError, TypeError, RuntimeError, AttributeError) as error:
        raise unsupported(
            arch, f"one of its layers has no constructor to write ({error})"
        ) from None
    model.eval()
    plain.eval()
    why = "its forward pass does more than run its layers in order (skips, branches, reshapes)"
    with torch.no_grad():
        try:
            same = torch.allclose(model(example), plain(example), atol=1e-6)
        except RuntimeError:
            same = False
    if not same:
        raise unsupported(arch, why)
    return code


def unsupported(arch: str, why: str) -> ConfigError:
    return ConfigError(
        "arch",
        arch,
        "an architecture whose layers run one after another (mlp, softmax_regression, cnn, "
        "alexnet)",
        f"{arch} cannot be exported as plain layers yet: {why}",
    )


def original_source(model: nn.Module) -> str:
    """The deeparch source of the model's class, for the reader to compare with."""
    try:
        return inspect.getsource(type(model))
    except (OSError, TypeError):
        return ""
