"""Continual-learning methods, one file each; looked up by name and imported only when a run needs one."""

from __future__ import annotations

import importlib

# name -> "module:class"; the typed parameters live in core/config.py (torch-free, for forms and validation).
METHODS: dict[str, str] = {
    "none": "core.methods.none:FineTuning",
    "joint": "core.methods.joint:Joint",
    "ewc": "core.methods.ewc:EWC",
    "online-ewc": "core.methods.ewc:OnlineEWC",
    "si": "core.methods.si:SI",
    "lwf": "core.methods.lwf:LwF",
    "xdg": "core.methods.xdg:XdG",
    "separate": "core.methods.separate:SeparateNetworks",
}


def method_class(name: str):
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
