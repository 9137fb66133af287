"""Continual evaluation (`train.eval_every`): the accuracy on every context measured inside a context, every N
iterations, for the accuracy curve of run.json (`acc_curve`) and the live view."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from core.engine.data import Benchmark
from core.engine.scenarios import ScenarioView
from core.methods.parts.base import Method
from core.schema.config import TrainConfig


class ContinualEvaluation:
    """`train.eval_every`: a fixed random subset of every context's test set (the same on every device: drawn
    on the CPU from the run's seed), kept on the device as the network sees it, and tested every N iterations
    inside a context. Hits stay on the device until `flush`, called where the loop reads the loss anyway:
    the evaluation adds no host sync of its own."""

    def __init__(self, t: TrainConfig, benchmark: Benchmark, model: nn.Module, method: Method[Any],
                 scenario: ScenarioView):
        self.every, self.batch = t.eval_every, t.eval_batch_size
        self.model, self.method, self.scenario = model, method, scenario
        chooser = torch.Generator().manual_seed(t.seed)
        self.sets: list[tuple[int, Tensor, Tensor]] = []  # (context index, inputs, labels) on the device
        for context in benchmark.contexts:
            n = context.x_test.shape[0]
            if t.eval_samples and t.eval_samples < n:
                idx = torch.randperm(n, generator=chooser)[: t.eval_samples].to(context.x_test.device)
                x, y = context.x_test[idx], context.y_test[idx]
            else:
                x, y = context.x_test, context.y_test
            self.sets.append((context.index, context.inputs(x), y))
        self.counts = [y.shape[0] for _, _, y in self.sets]
        self.pending: list[tuple[int, int, Tensor]] = []  # (iteration, stage, tallies per context) not read yet

    def due(self, iteration: int) -> bool:
        return iteration % self.every == 0

    @torch.no_grad()
    def evaluate(self, iteration: int, stage: int, trained: int) -> None:
        """Queue the accuracy on every context at `iteration` while training `stage` (contexts 0..`trained`)."""
        was_training = self.model.training
        self.model.eval()
        sums = []
        for index, x, y in self.sets:
            total = torch.zeros(3, device=y.device)
            for i in range(0, x.shape[0], self.batch):
                scores = self.method.predict(x[i : i + self.batch], index)
                if scores is None:
                    scores = self.model(x[i : i + self.batch])
                total += self.scenario.tally(*self.scenario.eval_view(scores, y[i : i + self.batch], index, trained))
            sums.append(total)
        self.model.train(was_training)
        self.pending.append((iteration, stage, torch.stack(sums)))

    def flush(self) -> list[tuple[int, int, list[float]]]:
        """The queued points as (iteration, stage, accuracies): one device-to-host copy for all of them."""
        if not self.pending:
            return []
        sums = torch.stack([h for _, _, h in self.pending]).tolist()
        points = [
            (it, stage, [round(self.scenario.score(s, n), 4) for s, n in zip(per_context, self.counts, strict=False)])
            for (it, stage, _), per_context in zip(self.pending, sums, strict=True)
        ]
        self.pending.clear()
        return points
