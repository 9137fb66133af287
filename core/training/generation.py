"""Generation runs (docs/architecture.md, run kinds): the learner is a class-conditional GAN that learns
one context's classes after another (Memory Replay GANs, Wu et al. 2018), scored by an independent verifier.

- The GAN: a conditional WGAN-GP whose critic also classifies (AC-GAN), as in MeRGAN's code: the critic
  minimises D(fake) - D(real) + gp * (||grad D(x_hat)|| - 1)^2 + ac * CE(D_cls(real), y); the generator
  minimises -D(G(z, c)) + ac * CE(D_cls(G(z, c)), c) + the method's penalty. An MLP pair for 8x8 digits, a
  small conv pair for 28x28. Conditioning: the one-hot class joins the noise. WGAN-GP because its critic
  stays informative on the few hundred images of a digits context where a plain GAN's saturates.
- `GANMethod` (core/methods/parts/gan.py): what a generation method may change: the "real" batch the
  critic sees (`real_batch`, MeRGAN-JTR adds the previous generator's old classes) and a penalty on the
  generator (`generator_penalty`: EWC, MeRGAN-RA); `after_context` as any method.
- `GenerationTrainer`: the classification trainer (core/training/train.py) with the step and the scoring replaced;
  contexts, events, checkpoints, resume and run.json are the same. acc_matrix[i][j] = share of the generator's
  samples of context j's classes, after context i, that the verifier classifies as intended. After each
  context the samples of every class seen go to `dreams/context-<k>/` (grid.png, one row per class) through
  core/training/dreams.py, with the Fréchet distance in the verifier's feature space per context and the reverse
  accuracy (a fresh classifier trained only on generated samples, tested on real test data) in its entry.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.data import BatchSampler
from core.engine.loop import StoreWriteError
from core.engine.models import build_model
from core.methods.parts.base import ContextInfo
from core.methods.parts.common import Dreams
from core.methods.parts.gan import GAN_BETAS, ConditionalGAN, GANMethod, critic_loss, generator_loss
from core.runs.events import PhaseFinished, PhaseStarted
from core.training.train import Trainer

SAMPLE_SEED = 7919  # evaluation noise: fixed per run and class, drawn on the CPU (the same on every device)


# --- the trainer --------------------------------------------------------------------------------------


class GenerationTrainer(Trainer):
    """core/training/train.py's Trainer with the GAN's step and the verifier's scoring; the rest is shared."""

    method: GANMethod[Any]
    model: ConditionalGAN

    def make_optimizer(self) -> torch.optim.Optimizer:
        """One Adam, a group per network: a step moves only the network whose gradients are set."""
        m = self.model
        return torch.optim.Adam([{"params": m.generator.parameters()}, {"params": m.critic.parameters()}],
                                lr=self.config.train.lr, betas=GAN_BETAS)

    def train_context(self, info: ContextInfo, iterations: int) -> tuple[float, float | None]:
        """`iterations` generator steps, each after n_critic critic steps; the mean generator loss of the tail."""
        t, p = self.config.train, self.method.params
        context, stage = info.context, info.stage
        critic = self.model.critic
        classes = (context.index + 1) * self.benchmark.classes_per_context  # class-IL: the classes seen so far
        self.model.train()
        sampler = BatchSampler(context.n_train, t.batch_size, self.generator, self.device)
        tail = self.start_training(stage, iterations)
        for it in range(iterations):
            for _ in range(p.n_critic):  # the critic: real (and replayed) images against the generator's
                idx = sampler.next()
                real, y = self.method.real_batch(context.inputs(context.x_train[idx]), context.y_train[idx], info)
                with torch.no_grad():
                    fake = self.model.sample(y)
                loss_d = critic_loss(critic, real, y, fake, classes, p.gp_weight, p.ac_weight)
                self.optimizer.zero_grad(set_to_none=True)
                loss_d.backward()
                self.optimizer.step()
            # the generator, on the labels of the last real batch; the method's penalty
            loss_g = generator_loss(critic, self.model.sample(y), y, classes, p.ac_weight).mean()
            penalty = self.method.generator_penalty(info)
            if penalty is not None:
                loss_g = loss_g + penalty
            self.optimizer.zero_grad(set_to_none=True)
            loss_g.backward()
            critic.zero_grad(set_to_none=True)  # the critic is not moved by the generator's loss
            self.optimizer.step()
            tail.step(it, loss_g)  # progress, the NaN check and the stop check, as the classification loop's
        return self.end_training(stage, tail)

    # --- scoring ------------------------------------------------------------------------------------

    def verifier(self, info: ContextInfo | None = None) -> nn.Module:
        from core.training.dreams import DreamJudge

        if self.judge is None:
            self.judge = DreamJudge(self.config, self.benchmark, self.device)
        return self.judge.train_verifier(info)

    @torch.no_grad()
    def draw(self, labels: list[int], per_class: int) -> tuple[Tensor, Tensor]:
        """`per_class` samples of each label, from fixed noise per (run seed, label): rows comparable across
        contexts."""
        was_training = self.model.training
        self.model.eval()
        xs, ys = [], []
        for label in labels:
            noise = torch.Generator().manual_seed(self.config.train.seed * 1_000_003 + SAMPLE_SEED + label)
            z = torch.randn(per_class, self.model.generator.z_dim, generator=noise).to(self.device)
            y = torch.full((per_class,), label, dtype=torch.long, device=self.device)
            xs.append(self.model.generator(z, y))
            ys.append(y)
        self.model.train(was_training)
        return torch.cat(xs), torch.cat(ys)

    def context_labels(self, j: int) -> list[int]:
        k = self.benchmark.classes_per_context
        return list(range(j * k, (j + 1) * k))

    def evaluate(self, trained: int, stage: int | None = None) -> list[float]:
        """Per context: the share of the generator's samples of its classes that the verifier classifies as the
        intended class (argmax over every class of the benchmark)."""
        start = time.monotonic()
        if stage is not None:
            self.emit(PhaseStarted(context=stage, phase="eval", total=len(self.benchmark.contexts)))
        verifier = self.verifier()
        accuracies = []
        for context in self.benchmark.contexts:
            self.check_stop()
            x, y = self.draw(self.context_labels(context.index), self.method.params.samples_per_class)
            with torch.no_grad():
                accuracies.append(round(float((verifier(x).argmax(1) == y).float().mean()), 6))
        seconds = time.monotonic() - start
        self.eval_s += seconds
        if stage is not None:
            self.emit(PhaseFinished(context=stage, phase="eval", seconds=seconds))
        return accuracies

    def record_validation(self, stage: int, trained: int) -> None:
        """Nothing held out: a generation run is scored by its verifier (GANParams refuses benchmark.validation)."""

    def record_dreams(self, stage: int, info: ContextInfo) -> dict[str, Any] | None:
        """The samples of every class seen so far, on disk as dreams are (grid.png, a row per class), with their
        figures: core/training/dreams.py's (verifier accuracy, Fréchet distance, ...), the Fréchet distance per context,
        the reverse accuracy."""
        from core.training.dreams import features_and_logits, frechet_distance

        verifier = self.verifier(info)
        seen = (info.context.index + 1) * self.benchmark.classes_per_context
        x, y = self.draw(list(range(seen)), self.method.params.samples_per_class)
        with info.phase("sample-quality"):
            entry = self.judge.record(self.run_dir, stage, Dreams(x, y, verifier, seen), info)
            real_x, real_y = self.judge.real_test(seen)
            with torch.no_grad():
                fake_f, _ = features_and_logits(verifier, x, info.check_stop)
                real_f, _ = features_and_logits(verifier, real_x, info.check_stop)
            per_context = {}
            for j in range(info.context.index + 1):
                lo, hi = j * self.benchmark.classes_per_context, (j + 1) * self.benchmark.classes_per_context
                fake_j, real_j = (y >= lo) & (y < hi), (real_y >= lo) & (real_y < hi)
                per_context[str(j)] = round(frechet_distance(fake_f[fake_j], real_f[real_j]), 4)
        quality = entry["quality"]
        quality["frechet_per_context"] = per_context
        quality["reverse_accuracy"] = self.reverse_accuracy(seen, info)
        return entry

    def reverse_accuracy(self, seen: int, info: ContextInfo) -> float | None:
        """A fresh classifier (the verifier's architecture) trained only on the generator's samples of the classes
        seen, then tested on the real test images of those classes."""
        steps = self.method.params.reverse_iterations
        if steps == 0:
            return None
        b = self.benchmark
        shape = tuple(b.input_shape)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.config.train.seed + 4093)
            net = build_model("lenet5", shape, seen) if min(shape[1:]) >= 16 else \
                build_model("mlp", shape, seen, hidden=[256, 64])
            net.to(self.device).train()
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
            was_training = self.model.training
            self.model.eval()
            with info.phase("reverse", total=steps) as progress:
                for step in range(1, steps + 1):
                    y = torch.randint(seen, (128,), device=self.device)
                    with torch.no_grad():
                        x = self.model.sample(y)
                    loss = F.cross_entropy(net(x), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    progress(step, loss.detach())
            self.model.train(was_training)
        net.eval()
        real_x, real_y = self.judge.real_test(seen)
        with torch.no_grad():
            hits = sum(int((net(real_x[i : i + 2048]).argmax(1) == real_y[i : i + 2048]).sum())
                       for i in range(0, real_x.shape[0], 2048))
        return round(hits / max(real_x.shape[0], 1), 4)

    def finish(self, status: str, error: Any = None) -> str | None:
        """The classification summary, plus the last context's sample figures as run metrics."""
        unsaved = super().finish(status, error)
        if unsaved is not None or not self.record.dreams:
            return unsaved
        last = self.record.dreams[-1].quality
        acc = self.record.acc_matrix
        old = acc[-1][: len(acc) - 1] if acc else []
        self.record.metrics.update({
            "final_old_acc": round(sum(old) / len(old), 6) if old else None,
            "final_frechet_distance": last.get("frechet_distance"),
            "final_reverse_acc": last.get("reverse_accuracy"),
        })
        try:
            self.save()
        except StoreWriteError as e:
            return str(e)
        return None
