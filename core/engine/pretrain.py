"""Pre-trained conv layers, as van de Ven et al. (2022) run split CIFAR-100 (`main_pretrain.py`, then
`--pre-convE --freeze-convE`): train a network on all of CIFAR-10, keep its conv stack, and start (and, with
`model.freeze_conv`, keep) a run's conv layers from it.

A checkpoint is a plain dict of tensors and scalars saved with torch.save: {"format", "kind", "input_shape",
"conv": state dict of the conv stack, "dataset", "epochs", "test_acc"}. It is read once, its sha256 taken from
the bytes read, and those same bytes loaded with weights_only=True (no code in it can run); the run records
the sha256.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.engine.data import augment, load_split
from core.engine.models import build_model
from core.schema.config import BenchmarkConfig

FORMAT = "cltui-pretrained-conv-1"
CONV_KINDS = ("vdv-conv", "lenet5")


class PretrainedError(ValueError):
    """A checkpoint that cannot be used for this run, as one line naming model.pretrained and the fix."""


def pretrain(dataset: str, kind: str, out: Path, *, epochs: int = 10, augment_data: bool = False,
             batch_size: int = 256, lr: float = 1e-4, seed: int = 0, device: str = "cpu",
             data_dir: str | None = None, report: Callable[[int, float, float], None] = lambda e, loss, s: None
             ) -> dict[str, Any]:
    """Train `kind` on every class of `dataset` for `epochs` passes and save its conv stack to `out`; the saved
    checkpoint's summary. `report(epoch, mean loss, seconds)` after each epoch."""
    cfg = BenchmarkConfig(name=dataset, contexts=1, data_dir=data_dir)  # type: ignore[arg-type]
    split = load_split(cfg)
    dev = torch.device(device)
    torch.manual_seed(seed)
    model = build_model(kind, tuple(split.x_train.shape[1:]), cfg.num_classes).to(dev)  # type: ignore[arg-type]
    x, y = split.x_train.to(dev), split.y_train.to(dev)
    generator = torch.Generator(dev).manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
    model.train()
    for epoch in range(epochs):
        start, losses = time.monotonic(), []
        order = torch.randperm(len(y), generator=generator, device=dev)
        for i in range(0, len(y), batch_size):
            idx = order[i : i + batch_size]
            inputs = augment(x[idx], generator) if augment_data else x[idx]
            loss = nn.functional.cross_entropy(model(inputs), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        report(epoch + 1, torch.stack(losses).mean().item(), time.monotonic() - start)
    model.eval()
    with torch.inference_mode():
        x_test, y_test = split.x_test.to(dev), split.y_test.to(dev)
        hits = sum(int((model(x_test[i : i + 1024]).argmax(1) == y_test[i : i + 1024]).sum())
                   for i in range(0, len(y_test), 1024))
    state = {"format": FORMAT, "kind": kind, "input_shape": list(split.x_train.shape[1:]), "dataset": dataset,
             "epochs": epochs, "augment": augment_data, "test_acc": hits / max(len(y_test), 1),
             "conv": {k: v.detach().cpu() for k, v in model.conv.state_dict().items()}}  # type: ignore[union-attr]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
    tmp.replace(out)
    return {"path": str(out), "sha256": sha256_of(out.read_bytes()), "test_acc": state["test_acc"]}


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_conv(model: nn.Module, kind: str, path: str, freeze: bool) -> dict[str, Any] | None:
    """Load a checkpoint's conv layers into `model` (and freeze them when asked); what the run records of it.
    PretrainedError (one line) for a missing file, a file that is no checkpoint, or another model kind or
    shape. Nothing to load and nothing frozen: None."""
    conv = getattr(model, "conv", None)
    if freeze and conv is not None:
        conv.requires_grad_(False)
        model.conv_frozen = True  # type: ignore[assignment]  # keeps its BN statistics too (models.py)
    if not path:
        return None
    where = f"model.pretrained: {path}"
    try:
        raw = Path(path).expanduser().read_bytes()
    except OSError as e:
        raise PretrainedError(f"{where} cannot be read ({e.strerror or e}); make one with `cltui pretrain cifar10 "
                              f"--model {kind}`") from None
    digest = sha256_of(raw)  # of the very bytes loaded below
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a foreign or damaged file fails in many ways; all mean the same
        raise PretrainedError(f"{where} is not a checkpoint cltui can load ({type(e).__name__}); make one with "
                              f"`cltui pretrain cifar10 --model {kind}`") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("conv"), dict):
        raise PretrainedError(f"{where} is not a `cltui pretrain` checkpoint; make one with `cltui pretrain "
                              f"cifar10 --model {kind}`")
    if state.get("kind") != kind or conv is None:
        raise PretrainedError(f"{where} holds the conv layers of a {state.get('kind')} model, this run's "
                              f"model.kind is {kind}; pretrain one with `cltui pretrain cifar10 --model {kind}`")
    mine = conv.state_dict()
    theirs = state["conv"]
    wrong = [k for k in mine if k not in theirs or tuple(theirs[k].shape) != tuple(mine[k].shape)]
    if wrong or set(theirs) - set(mine):
        key = (wrong or sorted(set(theirs) - set(mine)))[0]
        got = tuple(theirs[key].shape) if key in theirs else "missing"
        raise PretrainedError(f"{where}: its conv layers do not fit this run's input (layer {key}: "
                              f"{got} in the checkpoint, {tuple(mine[key].shape) if key in mine else 'none'} here; "
                              f"made for inputs {state.get('input_shape')}); pretrain on data of this shape")
    conv.load_state_dict(theirs)
    return {"path": path, "sha256": digest, "kind": kind, "dataset": state.get("dataset"),
            "epochs": state.get("epochs"), "frozen": freeze}
