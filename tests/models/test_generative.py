"""Tests for the generative families: autoencoders, VAEs and GANs."""

from __future__ import annotations

import math

import pytest
import torch

from deeparch.config import make_config
from deeparch.data.info import DataInfo
from deeparch.errors import ConfigError
from deeparch.models.autoencoder import kl_sparsity, l1_sparsity
from deeparch.models.gan import build_dcgan
from deeparch.models.registry import create_model, get_arch, list_archs
from deeparch.tasks.vae import kl_divergence, vae_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models


MNIST = DataInfo("mnist", "image", (1, 28, 28), 10, tuple(str(i) for i in range(10)))
DIGITS = DataInfo("digits", "image", (1, 8, 8), 10, tuple(str(i) for i in range(10)))
CIFAR = DataInfo("cifar10", "image", (3, 32, 32), 10, tuple(str(i) for i in range(10)))
INFOS = [MNIST, DIGITS, CIFAR]
INFO_IDS = ["28x28", "8x8", "32x32x3"]

AUTOENCODERS = [
    "autoencoder",
    "autoencoder_deep",
    "denoising_autoencoder",
    "sparse_autoencoder",
    "conv_autoencoder",
    "linear_autoencoder",
]
VAES = ["vae", "conv_vae"]
GANS = ["dcgan", "mlp_gan", "cgan"]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def images(info: DataInfo, n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *info.input_shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- registry


@pytest.mark.parametrize("name", AUTOENCODERS + VAES + GANS)
def test_registered_with_the_task_conventions(name: str) -> None:
    spec = get_arch(name)
    assert name in list_archs()
    expected_task = {"autoencoder": "reconstruct", "vae": "vae", "gan": "gan"}[spec.family]
    assert spec.task == expected_task
    assert spec.data_kinds == ("image",)
    assert spec.default_dataset == "mnist"
    assert len(spec.description) > 80
    for field in spec.fields():
        assert field.help, f"{name}.{field.name} has no reason"


# ---------------------------------------------------------------- autoencoders


@pytest.mark.parametrize("info", INFOS, ids=INFO_IDS)
@pytest.mark.parametrize("name", AUTOENCODERS)
@torch.no_grad()
def test_autoencoder_shapes_range_and_consistency(name: str, info: DataInfo) -> None:
    model, config = create_model(name, info=info)
    x = images(info)
    code = model.encode(x)
    assert code.shape == (4, model.code_size) == (4, config.code_size)
    x_hat = model.decode(code)
    assert x_hat.shape == x.shape
    assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= 1.0
    assert torch.equal(model(x), x_hat)  # forward == decode(encode(x))
    assert model.penalty(code).shape == ()


def test_noise_std_only_on_the_denoising_autoencoder() -> None:
    for name in AUTOENCODERS:
        model, _ = create_model(name, info=MNIST)
        expected = 0.3 if name == "denoising_autoencoder" else 0.0
        assert model.noise_std == expected
    model, _ = create_model("denoising_autoencoder", {"noise_std": "0.5"}, info=MNIST)
    assert model.noise_std == 0.5


def test_seed_layer_sizes() -> None:
    model, _ = create_model("autoencoder", info=MNIST)
    # 784-128-64-12 and back: weights plus biases of six linear layers
    sizes = [784, 128, 64, 12, 64, 128, 784]
    assert n_params(model) == sum(a * b + b for a, b in zip(sizes, sizes[1:])) == 219_804
    deep, _ = create_model("autoencoder_deep", info=MNIST)
    sizes = [784, 400, 400, 20, 400, 400, 784]
    assert n_params(deep) == sum(a * b + b for a, b in zip(sizes, sizes[1:]))


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 7, 9), (3, 32, 32), (1, 8, 8), (1, 5, 5)])
def test_conv_autoencoder_returns_exactly_the_input_size(shape: tuple[int, ...]) -> None:
    info = DataInfo("odd", "image", shape, 10)
    model, _ = create_model("conv_autoencoder", {"channels": "4,8"}, info=info)
    x = images(info, n=2)
    assert model(x).shape == x.shape


@torch.no_grad()
def test_plain_autoencoders_have_no_penalty() -> None:
    code = torch.rand(5, 12)
    for name in ["autoencoder", "denoising_autoencoder", "conv_autoencoder", "linear_autoencoder"]:
        model, _ = create_model(name, info=MNIST)
        assert float(model.penalty(code)) == 0.0


@torch.no_grad()
def test_l1_penalty_against_hand_computation() -> None:
    code = torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, 3.0]])
    # (|1| + |-2| + 0 + 0.5 + 0 + |3|) / 2 images
    assert float(l1_sparsity(code)) == pytest.approx(6.5 / 2)
    model, _ = create_model(
        "sparse_autoencoder", {"sparsity": "l1", "sparsity_weight": 0.1}, info=MNIST
    )
    assert float(model.penalty(code)) == pytest.approx(0.1 * 6.5 / 2)


@torch.no_grad()
def test_kl_penalty_against_hand_computation() -> None:
    code = torch.tensor([[0.2, 0.9], [0.4, 0.5]])  # batch means 0.3 and 0.7
    rho = 0.1

    def kl(p: float, q: float) -> float:
        return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))

    expected = kl(rho, 0.3) + kl(rho, 0.7)
    assert float(kl_sparsity(code, rho)) == pytest.approx(expected, rel=1e-5)
    model, _ = create_model(
        "sparse_autoencoder",
        {"sparsity": "kl", "sparsity_weight": 2.0, "sparsity_target": rho},
        info=MNIST,
    )
    assert float(model.penalty(code)) == pytest.approx(2.0 * expected, rel=1e-5)
    # no penalty when every unit already fires at the target rate
    assert float(kl_sparsity(torch.full((3, 4), rho), rho)) == pytest.approx(0.0, abs=1e-6)


@torch.no_grad()
def test_sparse_codes_suit_their_penalty() -> None:
    x = images(MNIST)
    kl_model, _ = create_model("sparse_autoencoder", {"sparsity": "kl"}, info=MNIST)
    code = kl_model.encode(x)
    assert float(code.min()) > 0.0 and float(code.max()) < 1.0  # sigmoid: firing rates
    l1_model, _ = create_model("sparse_autoencoder", {"sparsity": "l1"}, info=MNIST)
    assert float(l1_model.encode(x).min()) >= 0.0  # ReLU: units can be exactly off
    overcomplete, _ = create_model("sparse_autoencoder", {"code_size": 1000}, info=MNIST)
    assert overcomplete.encode(x).shape == (4, 1000)


@torch.no_grad()
def test_linear_autoencoder_is_affine() -> None:
    model, _ = create_model("linear_autoencoder", {"output": "linear"}, info=DIGITS)
    x1, x2 = images(DIGITS, seed=1), images(DIGITS, seed=2)
    mixed = model(0.3 * x1 + 0.7 * x2)
    assert torch.allclose(mixed, 0.3 * model(x1) + 0.7 * model(x2), atol=1e-5)


def test_linear_autoencoder_with_mse_reaches_the_pca_error() -> None:
    torch.manual_seed(0)
    info = DataInfo("tiny", "image", (1, 4, 4), 2)
    # 256 samples near a 3-D subspace of R^16, plus a little noise
    basis = torch.randn(3, 16)
    flat = (torch.randn(256, 3) * torch.tensor([0.3, 0.2, 0.1])) @ basis
    flat = flat + 0.01 * torch.randn(256, 16) + 0.5
    x = flat.view(256, 1, 4, 4)
    centred = flat - flat.mean(0)
    _, singular_values, _ = torch.linalg.svd(centred, full_matrices=False)
    pca_mse = float((singular_values[2:] ** 2).sum() / centred.numel())  # keep 2 components
    model, _ = create_model("linear_autoencoder", {"code_size": 2, "output": "linear"}, info=info)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(250):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), x)
        loss.backward()
        optimizer.step()
    # PCA is the optimum of every linear code of size 2 (Baldi & Hornik 1989); training reaches it
    assert pca_mse * 0.999 <= loss.item() <= 1.02 * pca_mse


def test_autoencoder_config_errors_name_field_and_value() -> None:
    with pytest.raises(ConfigError) as error:
        create_model("autoencoder", {"code_size": 0}, info=MNIST)
    assert error.value.field == "code_size" and "code_size=0" in str(error.value)
    with pytest.raises(ConfigError) as error:
        create_model("autoencoder", {"code_size": 784}, info=MNIST)
    assert error.value.field == "code_size" and "784" in str(error.value)
    with pytest.raises(ConfigError) as error:
        create_model("denoising_autoencoder", {"noise_std": 0.0}, info=MNIST)
    assert error.value.field == "noise_std"
    with pytest.raises(ConfigError) as error:
        create_model("sparse_autoencoder", {"sparsity": "l2"}, info=MNIST)
    assert error.value.field == "sparsity" and "'l2'" in str(error.value)


def test_conv_autoencoder_too_deep_for_8x8() -> None:
    create_model("conv_autoencoder", {"channels": "8,16,32"}, info=DIGITS)  # 8 -> 4 -> 2 -> 1
    with pytest.raises(ConfigError) as error:
        create_model("conv_autoencoder", {"channels": "8,16,32,64"}, info=DIGITS)
    message = str(error.value)
    assert error.value.field == "channels"
    assert "(8, 16, 32, 64)" in message and "at most 3" in message and "8x8" in message
    create_model("conv_autoencoder", {"channels": "4,4,4,4,4"}, info=MNIST)  # 28 -> ... -> 1


# ---------------------------------------------------------------- VAEs


def test_vae_has_the_pytorch_examples_parameter_count() -> None:
    model, config = create_model("vae", info=MNIST)
    assert config.latent_dim == 20
    by_hand = (784 * 400 + 400) + 2 * (400 * 20 + 20) + (20 * 400 + 400) + (400 * 784 + 784)
    assert n_params(model) == by_hand == 652_824
    assert {"encoder", "mu", "logvar", "decoder"} <= {n for n, _ in model.named_children()}


@pytest.mark.parametrize("info", INFOS, ids=INFO_IDS)
@pytest.mark.parametrize("name", VAES)
@torch.no_grad()
def test_vae_shapes_and_range(name: str, info: DataInfo) -> None:
    model, config = create_model(name, info=info)
    x = images(info)
    recon, mu, logvar = model(x)
    assert recon.shape == x.shape  # exactly the input size, nothing cropped
    assert mu.shape == logvar.shape == (4, model.latent_dim) == (4, config.latent_dim)
    assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0
    assert model.beta == 1.0
    z = torch.zeros(3, model.latent_dim)
    assert model.decode(z).shape == (3, *info.input_shape)


@torch.no_grad()
def test_vae_samples_in_training_and_uses_the_mean_in_eval() -> None:
    torch.manual_seed(0)
    model, _ = create_model("conv_vae", {"capacity": 4}, info=MNIST)
    x = images(MNIST)
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])
    model.eval()
    recon, mu, logvar = model(x)
    assert torch.equal(recon, model.decode(model.encode(x)[0]))
    generator = torch.Generator().manual_seed(3)
    first = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, model.sample(5, generator=generator))


def test_vae_gradient_reaches_the_encoder() -> None:
    model, _ = create_model("vae", {"beta": 2.0}, info=DIGITS)
    x = images(DIGITS)
    recon, mu, logvar = model(x)
    reconstruction, kl = vae_loss(recon, x, mu, logvar, model.beta)
    (reconstruction + kl).backward()
    assert model.encoder.fc1.weight.grad is not None
    assert float(model.logvar.weight.grad.abs().sum()) > 0


def test_vae_loss_against_hand_computation() -> None:
    zero = torch.zeros(2, 3)
    assert float(kl_divergence(zero, zero)) == 0.0
    mu = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]])
    # per dimension 1/2 (sigma^2 + mu^2 - 1 - log sigma^2); the second image adds 0
    first_image = 0.5 * (1 + 1 - 1 - 0) + 0.5 * (4 + 4 - 1 - math.log(4.0))
    expected_kl = first_image / 2  # averaged over the batch of 2
    recon = torch.tensor([[0.5, 0.9], [0.2, 0.2]])
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Bernoulli negative log-likelihood summed over pixels, averaged over the batch
    expected_bce = -(math.log(0.5) + math.log(0.1) + math.log(0.8) + math.log(0.2)) / 2
    reconstruction, kl = vae_loss(recon, x, mu, logvar, beta=1.0)
    assert float(reconstruction) == pytest.approx(expected_bce, rel=1e-6)
    assert float(kl) == pytest.approx(expected_kl, rel=1e-6)
    _, weighted = vae_loss(recon, x, mu, logvar, beta=4.0)
    assert float(weighted) == pytest.approx(4.0 * expected_kl, rel=1e-6)


@pytest.mark.parametrize("name", VAES)
@pytest.mark.parametrize("latent_dim", [0, 1])
def test_vae_latent_dim_at_least_two(name: str, latent_dim: int) -> None:
    with pytest.raises(ConfigError) as error:
        create_model(name, {"latent_dim": latent_dim}, info=MNIST)
    assert error.value.field == "latent_dim"
    assert f"latent_dim={latent_dim}" in str(error.value) and "from 2" in str(error.value)


def test_vae_beta_bounds() -> None:
    assert make_config(get_arch("vae").config_cls, {"beta": "0"}).beta == 0.0
    with pytest.raises(ConfigError) as error:
        make_config(get_arch("conv_vae").config_cls, {"beta": 11})
    assert error.value.field == "beta"


# ---------------------------------------------------------------- GANs


def test_dcgan_64_matches_the_published_parameter_counts() -> None:
    model = build_dcgan(image_size=64, channels=3, latent_dim=100, ngf=64, ndf=64)
    assert n_params(model.generator) == 3_576_704
    assert n_params(model.discriminator) == 2_765_568
    model.eval()
    fake = model.generator(model.sample_noise(2))
    assert fake.shape == (2, 3, 64, 64)
    assert model.discriminator(fake).shape == (2,)


@torch.no_grad()
def test_dcgan_weights_follow_the_paper_initialisation() -> None:
    torch.manual_seed(0)
    model = build_dcgan(image_size=64, channels=3)
    weight = model.generator.net.convt2.weight  # 512 x 256 x 4 x 4 values
    assert float(weight.mean()) == pytest.approx(0.0, abs=1e-3)
    assert float(weight.std()) == pytest.approx(0.02, rel=0.02)
    assert float(model.discriminator.net.bn2.weight.mean()) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("info", INFOS, ids=INFO_IDS)
@pytest.mark.parametrize("name", GANS)
@torch.no_grad()
def test_gan_shapes_and_range(name: str, info: DataInfo) -> None:
    model, config = create_model(name, info=info)
    assert model.latent_dim == config.latent_dim
    assert model.conditional == (name == "cgan")
    assert model.num_classes == (10 if name == "cgan" else 0)
    z = model.sample_noise(4, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4, config.latent_dim)
    labels = torch.tensor([0, 1, 2, 3]) if model.conditional else None
    fake = model.generator(z, labels)
    assert fake.shape == (4, *info.input_shape)
    assert float(fake.min()) >= -1.0 and float(fake.max()) <= 1.0
    assert model.discriminator(fake, labels).shape == (4,)
    assert model(z).shape == (4,)  # D(G(z)); a conditional GAN cycles through the classes


def test_sample_noise_is_fixed_by_a_seeded_generator() -> None:
    model, _ = create_model("dcgan", info=MNIST)
    first = model.sample_noise(6, generator=torch.Generator().manual_seed(7))
    again = model.sample_noise(6, generator=torch.Generator().manual_seed(7))
    other = model.sample_noise(6, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)


@torch.no_grad()
def test_cgan_labels_change_the_generated_image() -> None:
    torch.manual_seed(0)
    model, _ = create_model("cgan", info=MNIST)
    model.eval()
    assert model.generator.label_embedding.weight.shape == (10, 10)
    z = model.sample_noise(1).repeat(2, 1)  # the same noise twice
    fakes = model.generator(z, torch.tensor([3, 7]))
    assert not torch.allclose(fakes[0], fakes[1])
    same = model.generator(z, torch.tensor([5, 5]))
    assert torch.allclose(same[0], same[1], atol=1e-6)
    with pytest.raises(ValueError):
        model.generator(z)


@torch.no_grad()
def test_dcgan_is_sized_from_the_data() -> None:
    on_mnist, _ = create_model("dcgan", {"ngf": 16, "ndf": 16}, info=MNIST)
    on_cifar, _ = create_model("dcgan", {"ngf": 16, "ndf": 16}, info=CIFAR)
    assert on_mnist.generator(on_mnist.sample_noise(2)).shape == (2, 1, 28, 28)
    assert on_cifar.generator(on_cifar.sample_noise(2)).shape == (2, 3, 32, 32)
    not_square = DataInfo("wide", "image", (1, 28, 32), 10)
    with pytest.raises(ConfigError) as error:
        create_model("dcgan", info=not_square)
    assert error.value.field == "dataset" and "28x32" in str(error.value)


def test_gan_config_errors() -> None:
    with pytest.raises(ConfigError) as error:
        create_model("dcgan", {"latent_dim": 1}, info=MNIST)
    assert error.value.field == "latent_dim" and "latent_dim=1" in str(error.value)
    with pytest.raises(ConfigError) as error:
        create_model("cgan", info=DataInfo("unlabelled", "image", (1, 28, 28), 1))
    assert error.value.field == "dataset"


def test_mlp_gan_generator_has_batchnorm_after_the_first_hidden_layer() -> None:
    model, config = create_model("mlp_gan", info=MNIST)
    assert config.batchnorm is True
    norms = [m for m in model.generator.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [512, 1024]  # not on fc1 (256), not on the output
    plain, _ = create_model("mlp_gan", {"batchnorm": False}, info=MNIST)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.generator.modules())
    # BatchNorm adds a scale and a shift per feature: 2 * (512 + 1024) parameters.
    assert n_params(model.generator) - n_params(plain.generator) == 2 * (512 + 1024)


@torch.no_grad()
def test_cgan_discriminator_adds_the_label_projection() -> None:
    torch.manual_seed(0)
    model, _ = create_model("cgan", info=MNIST)
    model.eval()
    discriminator = model.discriminator
    assert discriminator.projection.weight.shape == (10, 256)  # one vector per class
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    labels = torch.tensor([0, 4, 9])
    inputs = torch.cat([x.view(3, -1), discriminator.label_embedding(labels)], dim=1)
    hidden = discriminator.features(inputs)  # (3, 256)
    expected = discriminator.head(hidden).view(-1) + (
        discriminator.projection(labels) * hidden
    ).sum(dim=1)
    assert torch.allclose(discriminator(x, labels), expected, atol=1e-6)
    plain, _ = create_model("cgan", {"projection": False}, info=MNIST)
    assert plain.discriminator.projection is None
    assert n_params(model.discriminator) - n_params(plain.discriminator) == 10 * 256
