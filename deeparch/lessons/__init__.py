"""The course's claims as experiments that check themselves: importing this package registers
every lesson family (one module per family, discovered as deeparch.models discovers its own)."""

import importlib
import pkgutil

from deeparch.lessons.registry import (  # noqa: F401  (the package's public API)
    Lesson,
    Outcome,
    Prediction,
    get_lesson,
    list_lessons,
    register,
)

NOT_A_FAMILY = {"registry", "runner", "measure"}

FAMILY_MODULES: tuple[str, ...] = tuple(
    sorted(
        module.name
        for module in pkgutil.iter_modules(__path__)
        if module.name not in NOT_A_FAMILY and not module.name.startswith("_")
    )
)
for _name in FAMILY_MODULES:
    importlib.import_module(f"{__name__}.{_name}")  # its register() calls run on import
