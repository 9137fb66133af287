"""Dreamed images on disk, and how good they are.

After a context in which a data-free method dreamed, `DreamJudge.record` writes
`runs/<id>/dreams/context-<k>/`:
- `grid.png`: one row per class (torchvision's make_grid), the class name at the left;
- `images/<label>-<i>.png`: the individual images, as pixels (CIFAR's standardisation undone, permuted
  pixels put back in place);
- `latent.json`: a 2-D PCA of the model's features for real test images and for the dreams, per class;
and returns the run.json entry with the quality figures:
- `teacher_agreement`: the teacher (the frozen model that dreamed) gives the class the image was dreamed
  for; `teacher_confidence`: its mean top probability; `class_coverage`: the fraction of classes it sees
  at least once among the dreams (ABD labels its dreams by the teacher, so its agreement is 1 by design);
- `verifier_accuracy`: a small classifier trained separately on all the real training data (the method
  never sees it) gives the intended class, among the classes dreamed of; `verifier_real_accuracy`: the
  same on real test images of those classes, the ceiling;
- `feature_distance` (per class and mean): the distance between the mean verifier feature of a class's
  dreams and of its real test images, divided by the real images' RMS distance to their mean
  (0: the dreams sit at the class centre; 1: one within-class spread away);
- `frechet_distance`: between Gaussians fitted to the verifier features of all dreams and of the real
  test images of the same classes (FID's formula in the verifier's feature space).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

from core.engine.data import CIFAR_STATS, Benchmark
from core.engine.models import build_model
from core.methods.parts.base import ContextInfo
from core.methods.parts.common import Dreams
from core.runs.paths import inside
from core.schema.config import RunConfig

LATENT_REAL_PER_CLASS = 100  # real test images per class drawn in the latent map
GRID_MIN_SIDE = 32  # small images (8x8 digits) are enlarged to at least this many pixels in the grid


class DreamJudge:
    """Saves and scores the dreams of one run; trains its verifier once, the first time it is needed."""

    def __init__(self, config: RunConfig, benchmark: Benchmark, device: torch.device):
        self.config, self.benchmark, self.device = config, benchmark, device
        self.verifier: nn.Module | None = None

    # --- the verifier -----------------------------------------------------------------------------

    def train_verifier(self, info: ContextInfo | None = None) -> nn.Module | None:
        steps = self.config.method.verifier_iterations  # type: ignore[attr-defined]
        if self.verifier is not None or steps == 0:
            return self.verifier
        b = self.benchmark
        shape = tuple(b.input_shape)
        seed = self.config.train.seed + 2147483
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if min(shape[1:]) >= 16:
                net = build_model("lenet5", shape, b.total_classes)
            else:
                net = build_model("mlp", shape, b.total_classes, hidden=[256, 64])
        net.to(self.device).train()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        rng = torch.Generator(self.device).manual_seed(seed)
        per_context = max(128 // len(b.contexts), 8)
        # With the run's info, a phase whose progress callback reports every step and raises Cancelled on a
        # stop (the verifier is then left untrained: self.verifier stays None).
        phase = info.phase("verifier", total=steps) if info is not None else nullcontext(lambda *_: None)
        with phase as progress:
            for step in range(1, steps + 1):
                xs, ys = [], []
                for c in b.contexts:  # every context in every batch: the verifier learns all classes at once
                    idx = torch.randint(c.n_train, (per_context,), generator=rng, device=self.device)
                    xs.append(c.inputs(c.x_train[idx]))
                    ys.append(c.y_train[idx])
                loss = F.cross_entropy(net(torch.cat(xs)), torch.cat(ys))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                progress(step, loss.detach())
        net.eval().requires_grad_(False)
        self.verifier = net
        return net

    # --- quality ----------------------------------------------------------------------------------

    def real_test(self, classes: int) -> tuple[Tensor, Tensor]:
        """Real test inputs (as the model sees them) and labels of the classes below `classes`."""
        xs, ys = [], []
        for c in self.benchmark.contexts:
            keep = c.y_test < classes
            if bool(keep.any()):
                xs.append(c.inputs(c.x_test[keep]))
                ys.append(c.y_test[keep])
        return torch.cat(xs), torch.cat(ys)

    def quality(self, dreams: Dreams, check: Callable[[], None] = lambda: None) -> dict[str, Any]:
        """The quality figures of `dreams` (see the module's docstring); any images, noise included.
        `check()` runs between batches (the run's stop check, raising Cancelled)."""
        self.train_verifier()
        with torch.no_grad():
            return self._quality(dreams, check)

    def _quality(self, dreams: Dreams, check: Callable[[], None] = lambda: None) -> dict[str, Any]:
        k = dreams.classes
        probs = F.softmax(batched(dreams.teacher, dreams.x, check=check)[:, :k].float(), dim=1)
        top = probs.argmax(1)
        figures: dict[str, Any] = {
            "teacher_agreement": mean(top == dreams.y),
            "teacher_confidence": round(float(probs.max(1).values.mean()), 4),
            "class_coverage": round(top.unique().numel() / k, 4),
        }
        verifier = self.verifier
        if verifier is None:
            return figures
        real_x, real_y = self.real_test(k)
        fake_f, fake_logits = features_and_logits(verifier, dreams.x, check)
        real_f, real_logits = features_and_logits(verifier, real_x, check)
        figures["verifier_accuracy"] = mean(fake_logits[:, :k].argmax(1) == dreams.y)
        figures["verifier_real_accuracy"] = mean(real_logits[:, :k].argmax(1) == real_y)
        per_class: dict[str, float] = {}
        for label in range(k):
            real_c, fake_c = real_f[real_y == label], fake_f[dreams.y == label]
            if real_c.shape[0] < 2 or fake_c.shape[0] == 0:
                continue
            centre = real_c.mean(0)
            spread = (real_c - centre).pow(2).sum(1).mean().sqrt().clamp_min(1e-8)
            per_class[str(label)] = round(float(torch.linalg.vector_norm(fake_c.mean(0) - centre) / spread), 4)
        figures["feature_distance"] = round(sum(per_class.values()) / len(per_class), 4) if per_class else None
        figures["feature_distance_per_class"] = per_class
        check()
        figures["frechet_distance"] = round(frechet_distance(fake_f, real_f), 4)
        return figures

    # --- on disk ----------------------------------------------------------------------------------

    def record(self, run_dir: Path, stage: int, dreams: Dreams, info: ContextInfo | None = None) -> dict[str, Any]:
        """Write the context's dreams, grid and latent map; return its run.json `dreams` entry. With the run's
        `info`, a stop asked meanwhile raises Cancelled between batches and between classes."""
        check = info.check_stop if info is not None else (lambda: None)
        self.train_verifier(info)
        folder = Path("dreams") / f"context-{stage}"
        out = inside(run_dir, *folder.parts)  # never through a link out of the run folder
        inside(run_dir, *folder.parts, "images").mkdir(parents=True, exist_ok=True)
        per_class = self.config.method.export_per_class  # type: ignore[attr-defined]
        pixels = self.to_pixels(dreams.x, dreams.y)
        rows: list[tuple[str, Tensor]] = []
        exported = 0
        for label in range(dreams.classes):
            check()
            chosen = pixels[dreams.y == label][:per_class]
            for i, image in enumerate(chosen):
                to_image(image).save(out / "images" / f"{label}-{i}.png")
                check()
            exported += chosen.shape[0]
            rows.append((self.class_name(label), chosen))
        grid_path = None
        if per_class > 0:
            labelled_grid(rows, per_class).save(out / "grid.png")
            grid_path = str(folder / "grid.png")
        check()
        latent = self.latent_map(dreams, stage, check)
        (out / "latent.json").write_text(json.dumps(latent) + "\n")
        return {
            "context": stage, "path": grid_path, "images": str(folder / "images"), "count": exported,
            "dreamed": int(dreams.x.shape[0]), "classes": list(range(dreams.classes)),
            "class_names": [self.class_name(label) for label in range(dreams.classes)],
            "latent": str(folder / "latent.json"), "quality": self.quality(dreams, check),
        }

    def class_name(self, label: int) -> str:
        b = self.benchmark
        context = b.contexts[label // b.classes_per_context]
        original = context.classes[label % b.classes_per_context]
        name = b.class_names[original] if original < len(b.class_names) else str(original)
        return name if b.protocol == "split" else f"{name} (context {context.index})"

    def to_pixels(self, x: Tensor, y: Tensor) -> Tensor:
        """Model inputs back to [0, 1] images: pixel permutations undone per class's context, CIFAR's
        standardisation undone."""
        x = x.detach().float().clone()
        b = self.benchmark
        for context in b.contexts:
            if context.permutation is None:
                continue
            rows = (y // b.classes_per_context) == context.index
            if bool(rows.any()):
                flat = torch.empty_like(x[rows].flatten(1))
                flat[:, context.permutation] = x[rows].flatten(1)
                x[rows] = flat.view_as(x[rows])
        if b.name in CIFAR_STATS:
            m, s = (torch.tensor(v, device=x.device).view(1, -1, 1, 1) for v in CIFAR_STATS[b.name])
            x = x * s + m
        return x.clamp(0, 1).cpu()

    @torch.no_grad()
    def latent_map(self, dreams: Dreams, stage: int, check: Callable[[], None] = lambda: None
                   ) -> dict[str, Any]:
        """PCA of the teacher's features fitted on real test images of the dreamed classes; dreams projected
        into the same two axes."""
        real_x, real_y = self.real_test(dreams.classes)
        keep = torch.cat([(real_y == label).nonzero()[:LATENT_REAL_PER_CLASS, 0] for label in range(dreams.classes)])
        real_x, real_y = real_x[keep], real_y[keep]
        real_f = batched(dreams.teacher.features, real_x, check=check).double()
        fake_f = batched(dreams.teacher.features, dreams.x, check=check).double()
        centre = real_f.mean(0)
        _, s, v = torch.linalg.svd(real_f - centre, full_matrices=False)
        axes = v[:2].T
        ratio = (s[:2] ** 2 / (s**2).sum().clamp_min(1e-12)).tolist()

        def points(f: Tensor, y: Tensor) -> dict[str, list]:
            xy = ((f - centre) @ axes).cpu()
            return {"x": [round(float(a), 4) for a in xy[:, 0]],
                    "y": [round(float(a), 4) for a in xy[:, 1]] if xy.shape[1] > 1 else [0.0] * len(xy),
                    "label": y.cpu().tolist()}

        return {"context": stage, "method": "pca", "space": "model features",
                "explained_variance_ratio": [round(r, 4) for r in ratio], "classes": list(range(dreams.classes)),
                "class_names": [self.class_name(label) for label in range(dreams.classes)],
                "real": points(real_f, real_y), "dreamed": points(fake_f, dreams.y)}


def mean(hits: Tensor) -> float:
    return round(float(hits.float().mean()), 4) if hits.numel() else 0.0


def batched(fn, x: Tensor, size: int = 1024, check: Callable[[], None] = lambda: None) -> Tensor:
    """fn over x, `size` rows at a time; `check()` after each (a stop check: no sync, no random numbers)."""
    parts = []
    for i in range(0, x.shape[0], size):
        parts.append(fn(x[i : i + size]))
        check()
    return torch.cat(parts)


def features_and_logits(net: nn.Module, x: Tensor, check: Callable[[], None] = lambda: None
                        ) -> tuple[Tensor, Tensor]:
    f = batched(net.features, x, check=check)
    return f.double(), net.head(f)


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to rows of a and b;
    tr (S_a S_b)^(1/2) is the sum of square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2)."""
    a, b = a.double(), b.double()
    cov_a = torch.cov(a.T) if a.shape[0] > 1 else torch.zeros(a.shape[1], a.shape[1], dtype=a.dtype, device=a.device)
    cov_b = torch.cov(b.T) if b.shape[0] > 1 else torch.zeros_like(cov_a)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    value = (a.mean(0) - b.mean(0)).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(float(value), 0.0)


def to_image(pixels: Tensor) -> Image.Image:
    """(C, H, W) in [0, 1] -> a PIL image (greyscale for one channel)."""
    array = (pixels * 255).round().to(torch.uint8)
    if array.shape[0] == 1:
        return Image.fromarray(array[0].numpy(), mode="L")
    return Image.fromarray(array.permute(1, 2, 0).numpy(), mode="RGB")


def labelled_grid(rows: list[tuple[str, Tensor]], per_class: int) -> Image.Image:
    """One row of images per class (torchvision's make_grid), the class name in a strip at the left."""
    from torchvision.utils import make_grid

    sample = next((images for _, images in rows if images.shape[0]), None)
    c, h, w = sample.shape[1:] if sample is not None else (1, 8, 8)
    scale = max(1, math.ceil(GRID_MIN_SIDE / min(h, w)))
    pad = 2
    row_w, row_h = per_class * (w * scale + pad) + pad, h * scale + 2 * pad
    font = ImageFont.load_default()
    strip = 8 + max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(name[:14], font=font)) for name, _ in rows)
    canvas = Image.new("RGB", (strip + row_w, row_h * len(rows)), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for r, (name, images) in enumerate(rows):
        top = r * row_h
        draw.text((4, top + row_h // 2), name[:14], fill=(230, 230, 230), font=font, anchor="lm")
        if images.shape[0] == 0:
            draw.text((strip + 4, top + row_h // 2), "none dreamed", fill=(120, 120, 120), font=font, anchor="lm")
            continue
        big = images.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
        if c == 1:
            big = big.expand(-1, 3, -1, -1)
        grid = make_grid(big, nrow=per_class, padding=pad, pad_value=0.0)
        canvas.paste(to_image(grid), (strip, top))
    return canvas
