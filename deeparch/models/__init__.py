"""The architecture catalogue: importing this package registers every family.

Every module of this package is a family, named for it (mlp.py holds the mlp family), except
`registry` and helpers: a module whose name starts with an underscore (`_layers.py` for layers
two families share, say) is never imported here, only by the families that use it. A family
module registers at least one architecture, defines its builders (the registry takes an
architecture's family from its builder's module) and may declare GALLERY_POSITION, where Home
shows it. Adding a family is adding its module: nothing here or elsewhere lists them.
"""

import importlib
import pkgutil

from deeparch.models.registry import (  # noqa: F401  (the package's public API)
    ArchSpec,
    archs_in_gallery_order,
    build_config,
    create_model,
    get_arch,
    list_archs,
    list_families,
    register,
)

NOT_A_FAMILY = {"registry", "parts"}  # parts: naming and freezing a model's parts


def _is_family_module(name: str) -> bool:
    return name not in NOT_A_FAMILY and not name.startswith("_")


# Alphabetical (sorted, not left to the file system), so the registration order, which tests and
# the CLI list follow, is the same on every machine.
FAMILY_MODULES: tuple[str, ...] = tuple(
    sorted(
        module.name for module in pkgutil.iter_modules(__path__) if _is_family_module(module.name)
    )
)
for _name in FAMILY_MODULES:
    importlib.import_module(f"{__name__}.{_name}")  # its register() calls run on import
