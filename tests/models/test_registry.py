"""Every registered architecture, the day it lands: builds at defaults, right shapes, no NaN."""

import ast
import math
from pathlib import Path

import pytest
import torch

from deeparch import models
from deeparch.config import check_value, field_specs
from deeparch.data.catalogue import dataset_info, list_datasets, load_dataset
from deeparch.data.info import TOKEN_KINDS
from deeparch.errors import ConfigError, DeeparchError, UnknownNameError
from deeparch.models.mlp import MLPConfig
from deeparch.models.registry import (
    TASKS,
    ArchSpec,
    archs_in_gallery_order,
    check_compatible,
    compatible_datasets,
    create_model,
    get_arch,
    list_archs,
    list_families,
    register,
)

ARCHS = list_archs()
BATCH = 8
# Home's gallery today, from the simplest idea to the newest (each module's GALLERY_POSITION).
SYLLABUS_GALLERY = ["mlp", "cnn", "inception", "resnet", "rnn", "qrnn", "tcn", "forecast",
                    "language", "seq2seq", "word2vec", "autoencoder", "vae", "unet",
                    "gan"]  # fmt: skip


def test_the_syllabus_is_registered():
    # fmt: off
    expected = {
        "mlp", "logistic_regression", "softmax_regression", "mlp_conv1d",
        "cnn", "alexnet", "inception", "resnet", "plainnet",
        "rnn", "lstm", "gru", "qrnn", "tcn",
        "autoencoder", "conv_autoencoder", "denoising_autoencoder", "sparse_autoencoder",
        "linear_autoencoder", "vae", "conv_vae", "dcgan", "mlp_gan", "cgan", "unet1d", "unet2d",
        "forecaster", "char_lm", "seq2seq", "skipgram", "cbow",
    }
    # fmt: on
    assert expected <= set(ARCHS)


def test_every_family_module_is_found_and_registers_its_own_architectures():
    # Discovered, not listed: every public module of deeparch.models but the registry and the
    # helpers every family shares (parts: naming and freezing a model's parts).
    package = Path(models.__file__).parent
    public = sorted(path.stem for path in package.glob("*.py") if not path.stem.startswith("_"))
    assert models.NOT_A_FAMILY == {"registry", "parts"}
    assert list(models.FAMILY_MODULES) == [
        name for name in public if name not in {"registry", "parts"}
    ]
    assert {get_arch(name).family for name in ARCHS} == set(models.FAMILY_MODULES)
    for name in ARCHS:
        spec = get_arch(name)
        assert spec.builder.__module__ == f"deeparch.models.{spec.family}", name


def test_registration_order_is_module_by_module_alphabetically():
    # The order every parametrized test and `deeparch list` see: the modules alphabetically (a
    # module imported by another registers first: cnn imports mlp), each in its own order. A new
    # family slots in without reordering these.
    today = [
        "autoencoder", "autoencoder_deep", "denoising_autoencoder", "sparse_autoencoder",
        "conv_autoencoder", "linear_autoencoder", "mlp", "logistic_regression",
        "softmax_regression", "mlp_conv1d", "cnn", "alexnet", "rnn", "lstm", "gru", "qrnn",
        "tcn", "forecaster", "dcgan", "mlp_gan", "cgan", "inception", "char_lm", "resnet",
        "plainnet", "seq2seq", "unet1d", "unet2d", "vae", "conv_vae", "skipgram", "cbow",
    ]  # fmt: skip
    assert [name for name in ARCHS if name in today] == today


def test_gallery_goes_from_the_simplest_family_to_the_newest():
    families = list_families()
    assert [family for family in families if family in SYLLABUS_GALLERY] == SYLLABUS_GALLERY
    assert sorted(families) == sorted(models.FAMILY_MODULES)
    gallery = archs_in_gallery_order()
    assert sorted(gallery) == sorted(ARCHS)
    assert gallery[:4] == ["mlp", "logistic_regression", "softmax_regression", "mlp_conv1d"]
    for family in families:  # each family in one run, in registration order
        members = [name for name in ARCHS if get_arch(name).family == family]
        start = gallery.index(members[0])
        assert gallery[start : start + len(members)] == members


def _builder_outside_the_models_package(config, info):
    return torch.nn.Linear(2, 2)


def test_a_builder_outside_a_family_module_is_refused():
    spec = ArchSpec(
        name="stray",
        task="classify",
        config_cls=MLPConfig,
        builder=_builder_outside_the_models_package,
        data_kinds=("points",),
        default_dataset="moons",
        description="A builder defined in a test module, so it has no family.",
    )
    with pytest.raises(ValueError, match="define the builder in the family's own module"):
        register(spec)
    assert "stray" not in list_archs()


def test_models_import_deeparch_only_at_module_level():
    # A function-level import hides a cycle; the registry needs none (models never import the
    # engine, and deeparch.data never imports models).
    for path in Path(models.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("deeparch"):
                    pytest.fail(f"{path.name}:{node.lineno} imports {node.module} in a function")
                if isinstance(node, ast.Import) and any(
                    alias.name.startswith("deeparch") for alias in node.names
                ):
                    pytest.fail(f"{path.name}:{node.lineno} imports deeparch in a function")


@pytest.mark.parametrize("name", ARCHS)
def test_train_defaults_are_valid_training_settings(name):
    from deeparch.config import check_value
    from deeparch.engine.config import train_field_specs

    specs = {spec.name: spec for spec in train_field_specs()}
    defaults = get_arch(name).train_defaults
    assert "epochs" in defaults  # one click on Train runs long enough to show learning
    for field_name, value in defaults.items():
        assert field_name in specs and field_name not in ("arch", "dataset", "arch_config")
        check_value(specs[field_name], value)


def test_summary_is_the_first_sentence():
    spec = get_arch("dcgan")
    assert spec.summary == "A deep convolutional GAN (Radford et al. 2015)."
    assert get_arch("tcn").summary.endswith("(receptive field 1 + (k-1)(2^L - 1)).")


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as caught:
        get_arch("transformer9000")
    assert "transformer9000" in str(caught.value)
    assert "mlp" in str(caught.value)


@pytest.mark.parametrize("name", ARCHS)
def test_spec_is_complete(name):
    spec = get_arch(name)
    assert spec.task in TASKS
    assert len(spec.description) > 20
    # The card's one-sentence summary: a whole sentence, not cut at "et al." or "1, 2, 4, ..."
    assert spec.description.startswith(spec.summary) and spec.summary.endswith(".")
    assert not spec.summary.endswith(("al.", "e.g.", "..")) and len(spec.summary) > 20
    assert spec.summary.count("(") == spec.summary.count(")")
    assert spec.default_dataset in list_datasets()
    assert dataset_info(spec.default_dataset).kind in spec.data_kinds
    for field in field_specs(spec.config_cls):
        assert field.help, f"{name}.{field.name} has no reason"
        check_value(field, field.default)  # every default lies within its own bounds


def _batch(name):
    spec = get_arch(name)
    data = load_dataset(spec.default_dataset)
    return data.info, data.x_val[:BATCH], data.y_val[:BATCH]


def _finite(*tensors):
    return all(bool(torch.isfinite(t).all()) for t in tensors)


SEQUENCE_OUTPUT_TASKS = ("forecast", "language_model", "seq2seq", "word2vec")


def check_sequence_outputs(model, task, info, x, y):
    """The output shapes of the tasks whose labels are sequences (or words) too."""
    n = len(x)
    out = model(x)
    assert _finite(out)
    if task == "forecast":
        assert out.shape == y.shape == x.shape  # one next value per step
        assert model.rollout(x[:, :10], 5).shape == (n, 5, 1)
    elif task == "language_model":
        assert out.shape == (n, x.shape[1], info.num_classes)
    elif task == "seq2seq":
        assert out.shape == (n, *info.target_shape, info.num_classes)
        assert model.teacher_forced(x, y).shape == out.shape
    else:
        logits, targets = model.pairs(x)
        assert out.shape == (n, info.vocab_size)
        assert logits.shape == (len(targets), info.vocab_size)


@pytest.mark.parametrize("name", ARCHS)
def test_builds_and_runs_forward_on_its_default_dataset(name):
    spec = get_arch(name)
    info, x, y = _batch(name)
    model, config = create_model(name, info=info)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > 0
    with torch.no_grad():
        if spec.task in ("classify", "sequence"):
            logits = model(x)
            binary = info.num_classes == 2 and logits.shape[-1] == 1
            assert logits.shape == (BATCH, 1 if binary else info.num_classes)
            assert _finite(logits)
        elif spec.task == "reconstruct":
            code = model.encode(x)
            recon = model.decode(code)
            assert code.shape == (BATCH, model.code_size)
            assert recon.shape == x.shape
            assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0
            assert _finite(code, recon, model.penalty(code))
        elif spec.task == "denoise":
            out = model(x)
            assert out.shape == x.shape
            assert _finite(out)
        elif spec.task == "vae":
            recon, mu, logvar = model(x)
            assert recon.shape == x.shape
            assert mu.shape == logvar.shape == (BATCH, model.latent_dim)
            assert _finite(recon, mu, logvar)
        elif spec.task in SEQUENCE_OUTPUT_TASKS:
            check_sequence_outputs(model, spec.task, info, x, y)
        elif spec.task == "gan":
            z = model.sample_noise(BATCH)
            args = (y,) if model.conditional else ()
            fake = model.generator(z, *args)
            assert fake.shape == x.shape
            assert float(fake.min()) >= -1.0 and float(fake.max()) <= 1.0
            logits = model.discriminator(x * 2 - 1, *args)
            assert logits.shape == (BATCH,)
            assert _finite(fake, logits)
        else:
            pytest.fail(f"no shape check for task {spec.task}")


@pytest.mark.parametrize("name", ARCHS)
def test_integer_fields_reject_values_below_their_bounds(name):
    # Every bounded integer field refuses a value under its minimum, naming itself.
    spec = get_arch(name)
    for field in field_specs(spec.config_cls):
        if field.type is int and field.min is not None and math.isfinite(field.min):
            with pytest.raises(ConfigError) as caught:
                create_model(name, {field.name: int(field.min) - 1})
            assert caught.value.field == field.name
            assert str(int(field.min) - 1) in str(caught.value)


def _zero_batch(info, n=2):
    # Token datasets feed class indices (long); every other kind feeds floats.
    dtype = torch.long if info.kind in TOKEN_KINDS else torch.float32
    return torch.zeros((n, *info.input_shape), dtype=dtype)


@pytest.mark.parametrize("dataset", list_datasets())
@pytest.mark.parametrize("name", ARCHS)
def test_every_architecture_either_fits_a_dataset_or_says_why(name, dataset):
    # Described with dataset_info only: nothing is loaded, so torchvision sets need no files.
    spec = get_arch(name)
    info = dataset_info(dataset)
    try:
        model, _ = create_model(name, info=info)
    except DeeparchError as refused:
        message = str(refused)
        assert message and "Traceback" not in message
        if info.kind not in spec.data_kinds:
            assert isinstance(refused, ConfigError) and refused.field == "dataset"
        return
    assert info.kind in spec.data_kinds  # a model is only built for a kind it accepts
    model.eval()
    x = _zero_batch(info)
    with torch.no_grad():
        if spec.task == "gan":
            labels = torch.zeros(2, dtype=torch.long)
            args = (labels,) if model.conditional else ()
            assert model.generator(model.sample_noise(2), *args).shape == x.shape
            assert model.discriminator(x, *args).shape == (2,)
        elif spec.task in ("classify", "sequence"):
            assert model(x).shape in ((2, info.num_classes), (2, 1))
        elif spec.task in SEQUENCE_OUTPUT_TASKS:
            y = torch.zeros((2, *info.target_shape), dtype=x.dtype)
            check_sequence_outputs(model, spec.task, info, x, y)
        elif spec.task == "vae":
            recon, mu, _ = model(x)
            assert recon.shape == x.shape and mu.shape == (2, model.latent_dim)
        elif spec.task == "reconstruct":
            assert model.decode(model.encode(x)).shape == x.shape
        else:
            assert model(x).shape == x.shape


def test_every_kind_has_an_architecture_that_accepts_it():
    kinds = {dataset_info(name).kind for name in list_datasets()}
    accepted = {kind for name in ARCHS for kind in get_arch(name).data_kinds}
    assert kinds <= accepted


@pytest.mark.parametrize("name", ARCHS)
def test_compatible_datasets_are_exactly_those_it_can_train_on_its_default_first(name):
    spec = get_arch(name)
    usable = compatible_datasets(spec)
    assert usable[0] == spec.default_dataset
    assert len(set(usable)) == len(usable)
    for dataset in list_datasets():
        if dataset in usable:
            check_compatible(spec, dataset_info(dataset))  # raises for one it cannot use
        else:
            with pytest.raises(ConfigError) as refused:
                check_compatible(spec, dataset_info(dataset))
            assert refused.value.field == "dataset" and refused.value.value == dataset


def test_compatible_datasets_of_a_sequence_model_and_an_image_classifier():
    assert compatible_datasets(get_arch("lstm")) == [
        "mnist1d", "digits_tokens", "mnist_rows", "surnames", "first_sign"
    ]  # fmt: skip
    assert compatible_datasets(get_arch("mlp"))[:2] == ["mnist", "digits"]
    assert "mnist1d" not in compatible_datasets(get_arch("mlp"))
