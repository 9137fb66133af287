"""Continual-learning methods, one file each; looked up by name and imported only when a run needs one.

A method's typed parameters are in core/schema/params.py (torch-free: the CLI and the forms read them);
its class, `class EWC(Method[EWCParams])` in core/methods/ewc.py, registers itself under the parameters'
name when its module is imported (core/methods/parts/base.py). This package imports no torch until asked for a class.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.methods.parts.base import Method


def registered_methods() -> dict[str, type[Method[Any]]]:
    """Every method class by name, once every module of this package is imported (the first call imports them)."""
    from core.methods.parts.base import METHOD_CLASSES
    from core.schema.params import METHOD_PARAMS

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")  # a module imported before is not run again
    return {name: METHOD_CLASSES[name] for name in METHOD_PARAMS if name in METHOD_CLASSES}  # the CLI's order


def method_class(name: str) -> type[Method[Any]]:
    methods = registered_methods()
    if name not in methods:
        raise KeyError(f"no method class takes the parameters of {name!r}; known: {', '.join(methods)}")
    return methods[name]
