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
    "er": "core.methods.er:ExperienceReplay",
    "agem": "core.methods.agem:AGEM",
    "derpp": "core.methods.derpp:DERPP",
    "icarl": "core.methods.icarl:ICaRL",
    "dgr": "core.methods.dgr:DGR",
    "bir": "core.methods.bir:BIR",
    "gen-classifier": "core.methods.gen_classifier:GenerativeClassifier",
    "deepinversion": "core.methods.deepinversion:DeepInversion",
    "abd": "core.methods.abd:ABD",
}


def method_class(name: str):
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
