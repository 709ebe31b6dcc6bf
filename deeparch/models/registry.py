"""Register, list and create architectures by name (after timm's register_model, create_model)."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from deeparch.config import FieldSpec, field_specs, make_config
from deeparch.data.catalogue import dataset_info, list_datasets
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError, UnknownNameError

# The package whose modules are the families (deeparch.models); see models/__init__.py.
MODELS_PACKAGE = __name__.rpartition(".")[0]

# What an architecture trains on; the training engine has one task per name.
#   classify:   model(x) -> logits (N, num_classes), or (N, 1) for a binary logistic regression
#   sequence:   classify over a sequence; the model also offers embed(x) and
#               classify_embedded(e, return_hidden=False), see models/rnn.py
#   reconstruct: autoencoders: encode(x) -> code, decode(code) -> x in [0, 1],
#               penalty(code),
#               noise_std (0 unless denoising)
#   denoise:    U-Nets: model(noisy) -> clean estimate, same shape; noise_std on the model
#   vae:        model(x) -> (recon, mu, logvar); encode(x) -> (mu, logvar); decode(z);
#               latent_dim; beta
#   gan:        model.generator(z[, labels]) -> images in [-1, 1]; model.discriminator(x[, labels])
#               -> logits (N,); latent_dim; conditional; num_classes; sample_noise(n, generator)
#   forecast:   model(x (N,T,1)) -> the next value after every step (N,T,1); rollout(context, n)
#   language_model: model(tokens (N,T)) -> next-token logits (N,T,V); generate(prompt, n, temp, g)
#   seq2seq:    model(x) -> greedily decoded logits (N,T_out,V); teacher_forced(x, y) likewise
#   word2vec:   model(windows (N,2W+1)) -> logits (N,V); pairs(windows) -> (logits, targets);
#               vectors() -> the input embedding (V, D)
TASKS = ("classify", "sequence", "reconstruct", "denoise", "vae", "gan", "forecast",
         "language_model", "seq2seq", "word2vec")  # fmt: skip


@dataclass(frozen=True)
class ArchSpec:
    name: str
    task: str
    config_cls: type
    builder: Callable[[Any, DataInfo], nn.Module]
    data_kinds: tuple[str, ...]  # which DataInfo.kind it accepts
    default_dataset: str
    description: str
    # Shape checks before building: raise ConfigError naming the field (kernel too large, ...).
    check: Callable[[Any, DataInfo], None] | None = None
    # Datasets it is meant for beyond the kind rule (None: every dataset of an accepted kind).
    datasets: tuple[str, ...] | None = None
    # TrainConfig fields that suit it better than the generic defaults, so one click on Train
    # shows it learning: a plain RNN needs many more epochs than an MLP to leave chance level.
    train_defaults: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> list[FieldSpec]:
        return field_specs(self.config_cls)

    @property
    def family(self) -> str:
        """The family module's name (mlp, cnn, rnn, ...): the module that defines the builder,
        as timm's register_model takes a model's module from its entrypoint function."""
        return self.builder.__module__.rpartition(".")[2]

    @property
    def summary(self) -> str:
        """The description's first sentence (for a card): a full stop that ends a sentence, not
        the one in "et al.", "e.g." or an ellipsis ("dilation 1, 2, 4, ...")."""
        end = SENTENCE_END.search(self.description)
        return self.description[: end.end()] if end else self.description


# A full stop followed by a capital (or an opening bracket) or by the end of the text, unless it
# closes "al", "e.g", "i.e" or belongs to an ellipsis.
SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\.\.)\.(?=\s+[A-Z(]|\s*$)")


_REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> ArchSpec:
    """Add an architecture under its name; its family is the module that defines its builder."""
    if spec.name in _REGISTRY:
        raise ValueError(f"architecture {spec.name!r} is registered twice")
    module = spec.builder.__module__
    if module.rpartition(".")[0] != MODELS_PACKAGE or spec.family.startswith("_"):
        raise ValueError(
            f"architecture {spec.name!r}: its builder is defined in {module}, but an "
            f"architecture's family is the {MODELS_PACKAGE} module that defines its builder; "
            "define the builder in the family's own module (a one-line wrapper will do)"
        )
    _REGISTRY[spec.name] = spec
    return spec


def list_archs() -> list[str]:
    """Every architecture in registration order: family modules alphabetically (one imported by
    another registers first: mlp before cnn), each in its own order."""
    return list(_REGISTRY)


def get_arch(name: str) -> ArchSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("architecture", name, list(_REGISTRY)) from None


def gallery_position(family: str) -> float:
    """Where a family sits in Home's gallery: its module's GALLERY_POSITION, or last (inf)."""
    return getattr(sys.modules[f"{MODELS_PACKAGE}.{family}"], "GALLERY_POSITION", math.inf)


def list_families() -> list[str]:
    """Every family in gallery order: by GALLERY_POSITION, families that declare none last, ties
    in registration order."""
    families = dict.fromkeys(spec.family for spec in _REGISTRY.values())
    return sorted(families, key=gallery_position)  # sorted() is stable


def archs_in_gallery_order() -> list[str]:
    """Every architecture, family by family in gallery order; registration order within one."""
    rank = {family: index for index, family in enumerate(list_families())}
    return sorted(_REGISTRY, key=lambda name: rank[_REGISTRY[name].family])


def build_config(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """The validated config of an architecture: defaults plus overrides (strings allowed)."""
    return make_config(get_arch(name).config_cls, overrides)


def create_model(
    name: str, overrides: dict[str, Any] | None = None, info: DataInfo | None = None
) -> tuple[nn.Module, Any]:
    """Build an architecture for a dataset. Returns (model, config).

    Shapes are checked before anything is built, so a bad combination is a ConfigError.
    Without `info` the architecture's default dataset is described without loading it.
    """
    spec = get_arch(name)
    config = make_config(spec.config_cls, overrides)
    if info is None:
        info = dataset_info(spec.default_dataset)
    check_compatible(spec, info)
    if spec.check is not None:
        spec.check(config, info)
    model = spec.builder(config, info)
    return model, config


def trains_on(spec: ArchSpec, info: DataInfo) -> bool:
    """Whether an architecture can train on a dataset: its kind, and the spec's own list if any."""
    return info.kind in spec.data_kinds and (spec.datasets is None or info.name in spec.datasets)


def compatible_datasets(spec: ArchSpec) -> list[str]:
    """The datasets an architecture can train on, its default first (read without loading)."""
    names = [name for name in list_datasets() if trains_on(spec, dataset_info(name))]
    if spec.default_dataset in names:
        names.remove(spec.default_dataset)
        names.insert(0, spec.default_dataset)
    return names


def check_compatible(spec: ArchSpec, info: DataInfo) -> None:
    if not trains_on(spec, info):
        raise ConfigError(
            "dataset",
            info.name,
            f"{spec.name} trains on {' or '.join(spec.data_kinds)} data"
            + (f" ({', '.join(spec.datasets)})" if spec.datasets else ""),
        )
