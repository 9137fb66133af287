"""Continual-learning methods, one file each; looked up by name and imported only when a run needs one."""

from __future__ import annotations

import importlib

# name -> "module:class"; the typed parameters live in core/config.py (torch-free, for forms and validation).
METHODS: dict[str, str] = {
    "none": "core.methods.none:FineTuning",
    "joint": "core.methods.joint:Joint",
}


def method_class(name: str):
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
