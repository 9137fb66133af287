"""A run as TensorBoard event files (`cltui export tensorboard`): the same scalars as MLflow, the accuracy matrix and
the dreams as images, the config as text, written with the `tensorboard` package's writer (torch's
SummaryWriter, imported only when used).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from core.reporting.tracking import (
    context_metrics,
    dream_grids,
    final_metrics,
    finite,
    has_module,
    loss_curve,
)


def write_tensorboard(record: dict[str, Any], run_dir: Path, logdir: Path) -> Path:
    """One run as TensorBoard event files in `logdir` (replacing the ones an earlier export wrote there), with
    the `tensorboard` package's writer: the same scalars as MLflow (per context, step = context; the loss per
    iteration), the accuracy matrix and the dreams as images, the config as text."""
    from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob("events.out.tfevents.*"):
        old.unlink()
    config = record.get("config") or {}
    rows = record.get("acc_matrix") or []
    contexts = {c.get("index"): c for c in record.get("contexts") or []}
    writer = SummaryWriter(log_dir=str(logdir))
    try:
        for k in range(len(rows)):
            row = contexts.get(k) or {}
            values = {**context_metrics(rows, k, config), "context_loss": row.get("final_loss"),
                      "context_train_s": row.get("train_s")}
            for key, value in values.items():
                if finite(value):
                    writer.add_scalar(key.replace("acc.c", "acc/c"), value, k)
        for step, loss, t in loss_curve(run_dir, record):
            writer.add_scalar("loss", loss, step, walltime=t)
        for key, value in final_metrics(record).items():
            if finite(value):
                writer.add_scalar(f"final/{key}", value, max(len(rows) - 1, 0))
        if rows:
            writer.add_image("acc_matrix", matrix_image(record), max(len(rows) - 1, 0), dataformats="HWC")
        for context, grid in dream_grids(run_dir, record):
            writer.add_image("dreams", png_array(grid), context, dataformats="HWC")
        writer.add_text("config", "```json\n" + json.dumps(config, indent=2) + "\n```", 0)
        writer.add_text("run", f"{record.get('id')}: {record.get('status')}, preset {record.get('preset')}", 0)
    finally:
        writer.close()
    return logdir


def png_array(path: Path) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def matrix_image(record: dict[str, Any]) -> Any:
    """The accuracy-matrix figure as an RGB array (the heat map cltui plot draws), or, without matplotlib, the
    matrix itself as grey levels, 24 pixels a cell."""
    import numpy as np

    if has_module("matplotlib"):
        from core.reporting.figures import write_figure

        with tempfile.TemporaryDirectory(prefix="cltui-figure-") as tmp:
            path = Path(tmp) / "accuracy.png"
            write_figure([record], path, dpi=100)
            return png_array(path)
    matrix = np.asarray(record.get("acc_matrix") or [[0.0]], dtype=np.float32)
    grey = np.clip(matrix * 255, 0, 255).astype(np.uint8).repeat(24, 0).repeat(24, 1)
    return np.stack([grey] * 3, axis=-1)
