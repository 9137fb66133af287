"""Fixed runs for the TUI tests, their snapshots and the CLI's output: run folders written by hand in the real
on-disk format (run.json schema 1, events.jsonl, worker.log, dreams/), with fixed ids, times and figures so
that screenshots of them never change.

`write_fixture_runs(root)` writes them all and returns {name: run folder}:
- finished: split-digits / class / ewc, a 5x5 accuracy matrix, metrics, timing.
- baseline: split-digits / class / none, finished (a second finished run to compare with).
- dreams:   split-digits / class / deepinversion, finished, dream grids (PNG), images and latent maps
            for contexts 0..3.
- failed:   split-digits / class / si, failed in context 2 with an error and a traceback.
- cancelled: split-digits / task / lwf, cancelled after 3 contexts.
- running:  split-digits / class / er, 2 contexts done, its pid is this process (so it counts as alive).
- corrupted: run.json cut in half.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from core.runs.events import ContextEvaluated, ContextStarted, Event, PhaseStarted, Progress, RunStarted, to_json
from core.runs.metrics import summarize

T0 = 1767254400.0  # 2026-01-01T08:00:00Z: event times count from here

IDS = {
    "finished": "20260101-090000-split-digits-class-ewc-s0",
    "baseline": "20260101-091500-split-digits-class-none-s0",
    "dreams": "20260101-093000-split-digits-class-deepinversion-s0",
    "failed": "20260101-100000-split-digits-class-si-s0",
    "cancelled": "20260101-103000-split-digits-task-lwf-s1",
    "running": "20260101-110000-split-digits-class-er-s0",
    "corrupted": "20260101-120000-split-digits-class-agem-s0",
}

ACC_EWC = [
    [0.998, 0.0, 0.0, 0.0, 0.0],
    [0.871, 0.983, 0.0, 0.0, 0.0],
    [0.702, 0.754, 0.972, 0.0, 0.0],
    [0.533, 0.611, 0.684, 0.986, 0.0],
    [0.412, 0.498, 0.547, 0.722, 0.979],
]
ACC_NONE = [
    [1.0, 0.0, 0.0, 0.042, 0.0],
    [0.0, 0.986, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.973, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.986, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.986],
]
ACC_DREAMS = [
    [0.995, 0.0, 0.0, 0.0, 0.0],
    [0.912, 0.961, 0.0, 0.0, 0.0],
    [0.803, 0.842, 0.948, 0.0, 0.0],
    [0.691, 0.734, 0.811, 0.957, 0.0],
    [0.604, 0.655, 0.702, 0.826, 0.951],
]
ACC_INIT = [0.5, 0.069, 0.027, 0.222, 0.0]

TRACEBACK = """Traceback (most recent call last):
  File "core/training/train.py", line 337, in run
    trainer.run()
  File "core/training/train.py", line 212, in run
    self.train_context(k)
  File "core/training/train.py", line 251, in train_context
    raise NonFiniteLoss(self.context, step)
core.training.train.NonFiniteLoss: loss is nan in context 2 at iteration 117; lower train.lr or method.c
"""


def config(method: dict[str, Any], scenario: str = "class", seed: int = 0, batch_norm: bool = False) -> dict[str, Any]:
    return {
        "preset": "split-digits",
        "benchmark": {"name": "digits", "protocol": "split", "contexts": 5, "classes_per_context": 2,
                      "class_order_seed": None, "pad_to": None, "rotation_max": 180.0, "augment": False,
                      "data_dir": None, "download": False},
        "scenario": scenario,
        "model": {"kind": "mlp", "hidden": [400, 400], "batch_norm": batch_norm, "fc_hidden": None},
        "train": {"iterations": 300, "batch_size": 128, "optimizer": "adam", "lr": 0.001, "momentum": 0.0,
                  "weight_decay": 0.0, "reset_optimizer": False, "seed": seed, "device": "auto",
                  "precision": "fp32", "compile": False, "eval_batch_size": 2048, "checkpoints": "last",
                  "progress_interval": 0.25},
        "method": method,
    }


def record(run_id: str, cfg: dict[str, Any], status: str, acc: list[list[float]], *, total_s: float | None,
           created: str, finished: str | None, pid: int = 4242, error: dict[str, Any] | None = None) -> dict[str, Any]:
    contexts = [{"index": k, "classes": [2 * k, 2 * k + 1], "train_s": round(1.1 + 0.1 * k, 3), "iterations": 300,
                 "final_loss": round(0.02 + 0.05 * k, 4)} for k in range(len(acc))]
    done = status != "running"
    metrics = {k: (round(v, 6) if v is not None else None) for k, v in summarize(acc, ACC_INIT).items()} if done else {}
    train_s = round(sum(c["train_s"] for c in contexts), 3)
    timing = {"total_s": total_s, "train_s": train_s, "eval_s": round(0.05 * len(acc), 3),
              "samples_per_s": 31250.0} if done else {}
    return {
        "schema": 1, "id": run_id, "status": status, "pid": pid, "created": created, "finished": finished,
        "preset": "split-digits", "config": cfg,
        "env": {"cltui": "0.1.0", "torch": "2.5.1", "python": "3.11.7", "device": "cpu", "host": "lab"},
        "contexts": contexts, "acc_init": ACC_INIT, "acc_matrix": acc, "metrics": metrics, "timing": timing,
        "dreams": [], "error": error,
    }


def write_run(root: Path, data: dict[str, Any], events: list[Event] = (), log: str = "") -> Path:
    folder = root / data["id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(data, indent=2) + "\n")
    (folder / "events.jsonl").write_text("".join(to_json(e) + "\n" for e in events))
    (folder / "worker.log").write_text(log or f"2026-01-01T08:00:00+00:00 worker pid {data['pid']} started for "
                                       f"{data['id']}\n")
    return folder


def context_events(cfg: dict[str, Any], run_id: str, acc: list[list[float]], start: float) -> list[Event]:
    """The events of a run that has evaluated `len(acc)` contexts, at fixed times."""
    t = start
    events: list[Event] = [RunStarted(run_id=run_id, contexts=5, device="cpu", config=cfg, t=t)]
    for k, row in enumerate(acc):
        t += 1.0
        events += [ContextStarted(context=k, classes=[2 * k, 2 * k + 1], iterations=300, t=t),
                   PhaseStarted(context=k, phase="train", total=300, t=t)]
        for step in (100, 200, 300):
            t += 0.4
            events.append(Progress(context=k, phase="train", step=step, total=300, loss=round(0.5 / step * 30, 4),
                                   samples_per_s=31250.0, t=t))
        t += 0.2
        events += [PhaseStarted(context=k, phase="eval", t=t),
                   ContextEvaluated(context=k, accuracies=row, train_s=1.2, final_loss=0.05, t=t + 0.1)]
    return events


# --- dreams ---------------------------------------------------------------------------------------

STROKES = {  # a few strokes per digit on an 8x8 canvas, so each class looks like itself
    0: [("ellipse", (1, 0, 6, 7))], 1: [("line", (4, 0, 4, 7)), ("line", (3, 1, 4, 0))],
    2: [("line", (1, 1, 6, 1)), ("line", (6, 1, 1, 7)), ("line", (1, 7, 6, 7))],
    3: [("line", (1, 0, 6, 0)), ("line", (6, 0, 3, 3)), ("line", (3, 3, 6, 7)), ("line", (6, 7, 1, 7))],
    4: [("line", (5, 0, 5, 7)), ("line", (5, 0, 1, 5)), ("line", (1, 5, 7, 5))],
    5: [("line", (6, 0, 1, 0)), ("line", (1, 0, 1, 3)), ("ellipse", (1, 3, 6, 7))],
    6: [("line", (5, 0, 1, 5)), ("ellipse", (1, 3, 6, 7))],
    7: [("line", (1, 0, 6, 0)), ("line", (6, 0, 2, 7))],
}


def dream_image(cls: int, rng: random.Random) -> Image.Image:
    """An 8x8 greyscale 'digit' with noise, as a dreamed split-digits image roughly looks."""
    image = Image.new("L", (8, 8), 0)
    draw = ImageDraw.Draw(image)
    for kind, box in STROKES.get(cls, STROKES[0]):
        jitter = [v + rng.choice((-1, 0, 0, 1)) for v in box]
        shape = tuple(jitter[:2]), tuple(jitter[2:])
        if kind == "ellipse":
            x0, y0, x1, y1 = jitter
            draw.ellipse((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=200 + rng.randrange(55))
        else:
            draw.line(shape, fill=180 + rng.randrange(75))
    pixels = image.load()
    for y in range(8):
        for x in range(8):
            pixels[x, y] = max(0, min(255, pixels[x, y] + rng.randrange(-30, 60)))
    return image


def write_dreams(folder: Path, contexts: int = 4, per_class: int = 8) -> list[dict[str, Any]]:
    """For each context but the last: grid.png (one row per class, a label strip at the left of each row),
    the images as <class>-<i>.png, latent.json; returns run.json's "dreams" entries."""
    entries = []
    for k in range(contexts):
        rng = random.Random(k)
        classes = list(range(2 * k + 2))  # every class seen so far is dreamed
        base = folder / "dreams" / f"context-{k}"
        (base / "images").mkdir(parents=True, exist_ok=True)
        cell, strip = 9, 6
        grid = Image.new("L", (strip + per_class * cell, len(classes) * cell), 0)
        for row, cls in enumerate(classes):
            grid.paste(Image.new("L", (strip - 2, cell - 1), 90 + 16 * cls), (0, row * cell))  # label strip
            for i in range(per_class):
                image = dream_image(cls, rng)
                image.save(base / "images" / f"{cls}-{i}.png")
                grid.paste(image, (strip + i * cell, row * cell))
        grid.save(base / "grid.png")
        latent: dict[str, Any] = {"context": k, "method": "pca", "explained_variance_ratio": [0.31, 0.12],
                                  "classes": classes}
        for kind, spread, shift in (("real", 0.6, 0.0), ("dreamed", 0.9, 0.4)):
            xs, ys, labels = [], [], []
            for cls in classes:
                cx, cy = 3 * (cls % 4) - 4.5, 3 * (cls // 4) - 1.5
                for _ in range(12):
                    xs.append(round(cx + shift + rng.gauss(0, spread), 3))
                    ys.append(round(cy - shift + rng.gauss(0, spread), 3))
                    labels.append(cls)
            latent[kind] = {"x": xs, "y": ys, "label": labels}
        (base / "latent.json").write_text(json.dumps(latent))
        rel = f"dreams/context-{k}"
        entries.append({
            "context": k, "path": f"{rel}/grid.png", "count": per_class * len(classes), "classes": classes,
            "images": f"{rel}/images", "latent": f"{rel}/latent.json",
            "quality": {"teacher_agreement": round(0.99 - 0.02 * k, 3), "verifier_accuracy": round(0.74 - 0.03 * k, 3),
                        "verifier_real_accuracy": 0.96, "feature_distance": round(1.2 + 0.1 * k, 3),
                        "feature_distance_per_class": {str(c): round(1.0 + 0.05 * c, 3) for c in classes},
                        "frechet_distance": round(12.3 + 1.7 * k, 2)},
        })
    return entries


# --- the runs --------------------------------------------------------------------------------------


def write_fixture_runs(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Path] = {}

    cfg = config({"name": "ewc", "lambda": 1e9, "fisher_labels": "all", "fisher_n": None})
    runs["finished"] = write_run(root, record(IDS["finished"], cfg, "finished", ACC_EWC, total_s=9.84,
                                              created="2026-01-01T09:00:00+00:00",
                                              finished="2026-01-01T09:00:10+00:00"),
                                 context_events(cfg, IDS["finished"], ACC_EWC, T0 + 3600))

    cfg = config({"name": "none"})
    runs["baseline"] = write_run(root, record(IDS["baseline"], cfg, "finished", ACC_NONE, total_s=6.21,
                                              created="2026-01-01T09:15:00+00:00",
                                              finished="2026-01-01T09:15:06+00:00"))

    cfg = config({"name": "deepinversion", "dreams_per_class": 20, "export_per_class": 8, "bn_weight": 10.0,
                  "first_bn_weight": 10.0, "temperature": 2.0, "verifier_iterations": 500, "steps": 2000,
                  "lr": 0.05, "batch_size": 256, "tv_weight": 2.5e-5, "l2_weight": 3e-8, "jitter": 2,
                  "flip": True}, batch_norm=True)
    data = record(IDS["dreams"], cfg, "finished", ACC_DREAMS, total_s=184.5,
                  created="2026-01-01T09:30:00+00:00", finished="2026-01-01T09:33:04+00:00")
    folder = root / IDS["dreams"]
    data["dreams"] = write_dreams(folder)
    runs["dreams"] = write_run(root, data)

    cfg = config({"name": "si", "c": 5000.0, "epsilon": 0.1})
    error = {"message": "loss is nan in context 2 at iteration 117; lower train.lr or method.c", "kind": "error",
             "traceback": TRACEBACK, "context": 2, "iteration": 117}
    runs["failed"] = write_run(root, record(IDS["failed"], cfg, "failed", ACC_EWC[:2], total_s=3.9,
                                            created="2026-01-01T10:00:00+00:00",
                                            finished="2026-01-01T10:00:04+00:00", error=error),
                               log="2026-01-01T10:00:00+00:00 worker pid 4242 started\n" + TRACEBACK)

    cfg = config({"name": "lwf", "alpha": 1.0, "temperature": 2.0}, scenario="task", seed=1)
    acc_task = [[0.999, 0.5, 0.5, 0.5, 0.5], [0.981, 0.994, 0.5, 0.5, 0.5], [0.964, 0.97, 0.991, 0.5, 0.5]]
    runs["cancelled"] = write_run(root, record(IDS["cancelled"], cfg, "cancelled", acc_task, total_s=4.4,
                                               created="2026-01-01T10:30:00+00:00",
                                               finished="2026-01-01T10:30:05+00:00",
                                               error={"message": "stopped from the TUI", "kind": "cancelled"}))

    cfg = config({"name": "er", "budget": 20})
    acc_running = [[0.997, 0.0, 0.0, 0.0, 0.0], [0.935, 0.981, 0.0, 0.0, 0.0]]
    running = record(IDS["running"], cfg, "running", acc_running, total_s=None,
                     created="2026-01-01T11:00:00+00:00", finished=None, pid=os.getpid())
    events = context_events(cfg, IDS["running"], acc_running, T0 + 3 * 3600)
    events += [ContextStarted(context=2, classes=[4, 5], iterations=300, t=T0 + 3 * 3600 + 10),
               PhaseStarted(context=2, phase="train", total=300, t=T0 + 3 * 3600 + 10),
               Progress(context=2, phase="train", step=120, total=300, loss=0.21, samples_per_s=30500.0,
                        t=T0 + 3 * 3600 + 10.5)]
    runs["running"] = write_run(root, running, events)

    text = json.dumps(record(IDS["corrupted"], config({"name": "agem", "budget": 20}), "finished", ACC_NONE,
                             total_s=7.0, created="2026-01-01T12:00:00+00:00",
                             finished="2026-01-01T12:00:07+00:00"), indent=2)
    folder = root / IDS["corrupted"]
    folder.mkdir()
    (folder / "run.json").write_text(text[: len(text) // 2])
    runs["corrupted"] = folder
    return runs
