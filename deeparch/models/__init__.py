"""The architecture catalogue: importing this package registers every family."""

from deeparch.models import (  # noqa: F401  (imported for their register() side effects)
    autoencoder,
    cnn,
    gan,
    inception,
    mlp,
    qrnn,
    resnet,
    rnn,
    tcn,
    unet,
    vae,
)
from deeparch.models.registry import (  # noqa: F401
    ArchSpec,
    build_config,
    create_model,
    get_arch,
    list_archs,
    register,
)
