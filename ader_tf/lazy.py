"""Package attributes imported from their modules on first use (PEP 562).

A package whose modules need TensorFlow can still be imported without it: its names load
when first asked for, so a module of the package that needs no TensorFlow (the plug-ins'
declarations that ``--help`` reads) can be imported on its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, modules: dict[str, str], namespace: dict[str, Any]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: The package's ``__name__``.
        modules: For each exported name, the module of the package that defines it.
        namespace: The package's ``globals()``, where a name is kept once imported.
    """

    def attribute(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted({*namespace, *modules})

    return attribute, names
