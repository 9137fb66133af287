"""The training loop over contexts: data on the device, a method's hooks, evaluation on every context,
events out, run.json and checkpoints on disk.

`run(config, run_dir, emit)` runs in the worker process (core/launch/worker.py) but works in any process.
It always ends by writing run.json with status finished, failed or cancelled, and emitting the
matching terminal event; it raises only for problems with its arguments.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from core.engine.data import BatchSampler, Benchmark, Context, DataError, StreamSampler, augment, build_benchmark
from core.engine.loop import Cancelled, NonFiniteLoss, ReportTail, StoreWriteError
from core.engine.optim import build_optimizer
from core.engine.scenarios import ScenarioView
from core.methods import method_class
from core.methods.parts.base import Batch, ContextInfo, Method, tensor_bytes
from core.methods.parts.common import frozen_copy
from core.runs import threads
from core.runs.events import (
    ContextEvaluated,
    ContextStarted,
    CurveEvaluated,
    DreamsSaved,
    Event,
    PhaseFinished,
    PhaseStarted,
    RunStarted,
)
from core.runs.metrics import SIDE_MATRICES, class_weights, summarize
from core.runs.paths import StoreError, check_run_files, inside, open_checked
from core.runs.record import ContextRow, RunError, RunRecord, read_record, write_record
from core.runs.store import checkpoint_files
from core.schema.config import RunConfig
from core.training.continual import ContinualEvaluation

FULL_DISK_BYTES = 64 * 2**20  # less free space than this after a failed checkpoint: the disk is full


class InputError(Exception):
    """Bad input found only once the worker looked (missing device, unreadable data): exit code 2."""


class ResumeError(Exception):
    """A run that cannot be continued (damaged checkpoint, unreadable run.json): its folder is left as it was."""


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"train.device: {spec} asked for but no CUDA device is visible; use --device cpu "
                             f"(also with --resume)")
        if (device.index or 0) >= torch.cuda.device_count():
            raise InputError(f"train.device: {spec} does not exist ({torch.cuda.device_count()} CUDA devices)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("train.device: mps asked for but not available; use --device cpu")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device.type}:{device.index or 0} {torch.cuda.get_device_name(device)}"
    return device.type


def environment(device: torch.device) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        cltui_version = version("cltui")
    except PackageNotFoundError:
        cltui_version = "unknown"
    return {"cltui": cltui_version, "torch": torch.__version__, "python": platform.python_version(),
            "device": describe_device(device), "host": platform.node(), **threads.in_use()}  # CPU threads, and why


class Trainer:
    """Holds everything of one run; `run()` below is the entry point."""

    def __init__(self, config: RunConfig, run_dir: Path, emit: Callable[[Event], None],
                 should_stop: Callable[[], bool], benchmark: Benchmark | None = None, resume: bool = False):
        self.config, self.run_dir, self.emit, self.should_stop = config, run_dir, emit, should_stop
        self.started = time.monotonic()
        self.elapsed_before = 0.0  # wall time of earlier sessions of a resumed run
        self.device = resolve_device(config.train.device)
        if resume:
            # Nothing is written to run.json until the checkpoint has loaded (restore() below): a resume that
            # fails leaves the record of every completed context exactly as it was.
            try:
                self.record = read_record(run_dir)
                check_run_files(run_dir)  # a link or FIFO in the folder: refused before a byte is written
            except StoreError as e:
                raise ResumeError(f"--resume: {e}") from None
        else:
            self.record = RunRecord.new(run_dir.name, config.preset, config.to_dict(), environment(self.device))
            self.save()
        t = config.train
        torch.manual_seed(t.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        try:
            self.benchmark = benchmark or build_benchmark(config.benchmark, self.device)
        except DataError as e:
            raise InputError(str(e)) from None
        self.scenario = ScenarioView(config.scenario, self.benchmark.classes_per_context, len(self.benchmark.contexts),
                                     config.train.active_classes, config.benchmark.regression,
                                     config.benchmark.first_context_classes)
        # Initialise on the CPU with the run's seed, so a seed means the same network on every device.
        method_cls = method_class(config.method.name)
        self.model: nn.Module = method_cls.build_model(config, self.benchmark.input_shape, self.scenario.head_size)
        self.load_pretrained(resume)
        self.model.to(self.device)
        try:
            self.method: Method = method_cls(config.method, config, self.model, self.scenario, self.benchmark,
                                             self.device)
        except ValueError as e:  # a method that cannot work with this model
            raise InputError(str(e)) from None
        self.optimizer = self.make_optimizer()
        self.generator = torch.Generator(self.device).manual_seed(t.seed)
        if t.compile:
            self.model.compile()
        self.previous_model: nn.Module | None = None
        self.side_rows: dict[str, list[float]] = {}  # the last evaluation's side rows (class-IL: SIDE_MATRICES)
        self.judge: Any = None  # core.training.dreams.DreamJudge, made when a method first dreams
        self.eval_s = 0.0
        self.train_s = 0.0
        self.samples = 0
        self.first_stage = self.restore() if resume else 0
        # iterations trained before the next stage, counted from the run's first step (the curve's x axis)
        self.steps = sum(c.iterations or 0 for c in self.record.contexts)
        self.continual = ContinualEvaluation(t, self.benchmark, self.model, self.method, self.scenario) \
            if t.eval_every else None
        b = config.benchmark
        # Task-free: every stage is a context-sized block of one stream, and the method is told no boundary.
        self.stream = None if b.stream == "academic" else StreamSampler(
            self.benchmark.contexts, b.stream, t.iterations, b.fuzziness, t.batch_size, self.generator, self.device)
        # ... so a method that consolidates at boundaries does it every update_every iterations instead
        self.update_every: int | None = getattr(config.method, "update_every", None) if self.stream else None
        if self.stream is not None and self.update_every:
            self.stream.record = True

    def load_pretrained(self, resume: bool) -> None:
        """model.pretrained / model.freeze_conv (core/engine/pretrain.py): the checkpoint's conv layers, its sha256 in
        run.json. A resumed run takes its weights from its own checkpoint, and only freezes again."""
        m = self.config.model
        if not (m.pretrained or m.freeze_conv):
            return
        from core.engine.datafiles import pretrained_problem
        from core.engine.pretrain import PretrainedError, load_conv

        problem = None if resume else pretrained_problem(self.config)
        if problem is not None:  # the words the CLI and the compose form use for a checkpoint not there
            raise InputError(str(problem))
        try:
            loaded = load_conv(self.model, m.kind, "" if resume else m.pretrained or "", m.freeze_conv)
        except PretrainedError as e:
            raise InputError(str(e)) from None
        if loaded is not None:
            self.record.pretrained = loaded

    def check_stop(self) -> None:
        if self.should_stop():
            raise Cancelled("stopped before training started")

    def restore(self) -> int:
        """Load the last context checkpoint (model, optimiser, method and random states) and only then mark the
        record resumed; the stage to run next."""
        folder = inside(self.run_dir, "checkpoints", action="read")
        checkpoints = [p for _, p in sorted(checkpoint_files(folder))]
        done = 0
        if checkpoints:
            path = checkpoints[-1]
            try:
                with open_checked(path) as f:  # never a link, a FIFO or a device
                    state = torch.load(f, map_location=self.device, weights_only=True)
                self.model.load_state_dict(state["model"])
                saved_names = state.get("optimizer_params")  # absent from checkpoints written before 2026-12
                if saved_names is not None and len(saved_names) == 1 and saved_names != self.optimizer_names():
                    named = dict(self.model.named_parameters())
                    self.optimizer = build_optimizer([named[n] for n in saved_names[0]], self.config.train,
                                                     self.device)
                self.optimizer.load_state_dict(state["optimizer"])
                self.method.load_state_dict(state["method"])
                torch.set_rng_state(state["rng"]["torch"])
                if "cuda" in state["rng"] and self.device.type == "cuda":
                    torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
                self.generator.set_state(state["rng"]["generator"])
                done = int(state["context"]) + 1
                saved = state.get("record")
            except Exception as e:  # noqa: BLE001 - whatever is wrong with the file, the run stays as it was
                first = str(e).splitlines()[0].split(". ")[0][:160] if str(e) else ""
                why = f"{type(e).__name__}: {first}" if first else type(e).__name__
                raise ResumeError(f"--resume: {path} is damaged ({why}); run.json is untouched; restore the file "
                                  f"from a backup, or start the run again") from None
            # The checkpoint carries the rows it completes: a kill between writing it and writing run.json
            # loses nothing.
            if saved is not None and len(self.record.acc_matrix) < done:
                self.record.contexts = [ContextRow.model_validate(c) for c in saved["contexts"]]
                self.record.acc_matrix = saved["acc_matrix"]
                self.record.acc_init = saved["acc_init"]
                self.record.acc_curve = saved.get("acc_curve", [])
                for key in SIDE_MATRICES:
                    setattr(self.record, f"{key}_matrix", saved.get(f"{key}_matrix", []))
            if len(self.record.acc_matrix) < done:
                raise ResumeError(f"--resume: run.json records {len(self.record.acc_matrix)} context(s) but {path} "
                                  f"follows context {done - 1}; run.json is untouched")
            if self.method.needs_previous_model:
                self.previous_model = frozen_copy(self.model)
        elif self.record.acc_matrix and self.config.train.checkpoints != "none":
            raise ResumeError(f"--resume: run.json records {len(self.record.acc_matrix)} completed context(s) but "
                              f"{folder} holds no checkpoint; run.json is untouched; start the run again")
        if done == 0:  # nothing completed: start over in the same folder
            self.record.acc_init = None
        self.record.resume(self.config.to_dict(), environment(self.device), done)
        rows = self.record.contexts
        self.elapsed_before = (rows[-1].elapsed_s or 0.0) if rows else 0.0
        self.train_s = sum(c.train_s or 0.0 for c in rows)
        self.samples = sum(c.iterations or 0 for c in rows) * self.config.train.batch_size
        self.save()
        return done

    def make_optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(self.model.parameters(), self.config.train, self.device)

    def optimizer_names(self) -> list[list[str]] | None:
        """Each of the optimiser's groups as its parameters' names (None where one is not the model's). A fresh
        optimiser covers what is trainable when it is made, so one made after a method froze part of the network
        (FOSTER's boosting, DER's older extractors, with reset_optimizer) covers less than the one made at the start:
        a checkpoint says which, and a resume rebuilds that one before loading its state."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        try:
            return [[names[id(p)] for p in group["params"]] for group in self.optimizer.param_groups]
        except KeyError:
            return None

    def save(self) -> None:
        try:
            write_record(self.run_dir, self.record)
        except OSError as e:
            raise StoreWriteError(str(self.run_dir / "run.json"), e, len(self.record.acc_matrix),
                                  self.run_dir.name) from None

    def elapsed(self) -> float:
        """Wall time of the whole run so far, earlier sessions of a resumed run included."""
        return self.elapsed_before + time.monotonic() - self.started

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        cfg = self.config
        self.check_stop()  # asked while the data loaded
        stages = ([self.benchmark.joint()] if self.method.trains_jointly else self.benchmark.contexts)
        iterations = cfg.train.iterations * (len(self.benchmark.contexts) if self.method.trains_jointly else 1)
        self.emit(RunStarted(run_id=self.run_dir.name, contexts=len(stages), device=describe_device(self.device),
                             config=cfg.to_dict(), resumed_from=self.first_stage or None))
        if self.record.acc_init is None:
            self.record.acc_init = self.evaluate(trained=-1)
        if self.continual is not None and self.steps == 0:  # the curve starts at the untrained network
            self.continual.evaluate(0, 0, -1)
        # A stage is one training of the sequence and one row of the accuracy matrix; its context says which
        # data and labels it learns (context.index = stage, except joint's single stage over every context).
        for stage, context in enumerate(stages):
            if stage < self.first_stage:
                continue
            self.emit(ContextStarted(context=stage, classes=context.classes, iterations=iterations))
            info = ContextInfo(stage, context, self.previous_model, self.emit, cfg.train.progress_interval,
                               self.should_stop)
            if (cfg.train.reset_optimizer or self.method.fresh_optimizer) and stage > 0:
                self.optimizer = self.make_optimizer()
            # A stream tells the method of no boundary: it starts once, and consolidates inside the loop.
            if self.stream is None or stage == self.first_stage:
                self.method.before_context(info)
            train_s, final_loss = self.train_context(info, iterations)
            try:
                if self.stream is None:
                    self.method.after_context(info)
                dreams = self.record_dreams(stage, info)
                if self.method.needs_previous_model:
                    self.previous_model = frozen_copy(self.model)
                trained = context.index if self.stream is None else self.stream.seen(self.steps - 1)
                accuracies = self.evaluate(trained=trained, stage=stage)
                self.record_validation(stage, trained)
            except Cancelled:
                # A stop in the phases after the training (a Fisher, herding, dreams, the evaluation): honoured at
                # once, so this context's training is not saved; say so, and what is kept.
                raise Cancelled(f"stopped in context {stage} after its training, while consolidating or evaluating "
                                f"it: context {stage} is not kept (a resume trains it again); "
                                f"{len(self.record.acc_matrix)} completed context(s) are kept") from None
            row = ContextRow(index=stage, classes=context.classes, train_s=round(train_s, 4), iterations=iterations,
                             final_loss=final_loss, elapsed_s=round(self.elapsed(), 3))
            # On disk before anyone hears of it: the checkpoint (which carries this row too), then run.json.
            # A kill between the two loses nothing: a resume takes the row from the checkpoint.
            self.checkpoint(stage, row, accuracies)
            self.record.memory = {"network": tensor_bytes(self.model.state_dict()), "method": self.method.held_bytes(),
                                  "teacher": tensor_bytes(self.previous_model.state_dict()) if self.previous_model
                                  is not None else 0}
            self.record.context_completed(row, accuracies, dreams=dreams, side=self.side_rows)
            self.record.metrics.update(validation_metrics(self.record))
            self.save()
            if dreams is not None:
                scalars = {k: v for k, v in dreams["quality"].items() if not isinstance(v, dict)}
                self.emit(DreamsSaved(context=stage, path=dreams["path"] or dreams["images"], count=dreams["count"],
                                      quality=scalars))
            self.emit(ContextEvaluated(context=stage, accuracies=accuracies, train_s=train_s, final_loss=final_loss))

    def record_dreams(self, stage: int, info: ContextInfo) -> dict[str, Any] | None:
        """Save and score what the method dreamed in this context (data-free methods); its run.json entry."""
        dreams = self.method.take_dreams()
        if dreams is None:
            return None
        from core.training.dreams import DreamJudge

        if self.judge is None:
            self.judge = DreamJudge(self.config, self.benchmark, self.device)
        self.judge.train_verifier(info)  # once per run, its own phase
        with info.phase("dream-quality"):
            entry = self.judge.record(self.run_dir, stage, dreams, info)
        return entry

    def train_context(self, info: ContextInfo, iterations: int) -> tuple[float, float | None]:
        """`iterations` optimiser steps on the context's training data through the method's hooks; the training
        time and the mean loss of the last steps (core/engine/loop.py's FINAL_LOSS_TAIL)."""
        t = self.config.train
        context, stage = info.context, info.stage
        continual, stream = self.continual, self.stream
        self.model.train()
        rows = self.method.training_rows(context) if stream is None else None  # (M,) or all of them
        sampler = BatchSampler(context.n_train if rows is None else rows.shape[0], t.batch_size, self.generator,
                               self.device)
        use_bf16 = t.precision == "bf16" and self.device.type in ("cuda", "cpu")  # autocast has bf16 on both
        do_augment = self.config.benchmark.augment
        for group in self.optimizer.param_groups:  # each context starts at the base rate
            group["lr"] = t.lr
        decay_at = {round(f * iterations) for f in t.lr_decay_at}
        tail = self.start_training(stage, iterations)
        for it in range(iterations):
            # learning-rate schedule: step decay at the given fractions of the context
            if it in decay_at:
                for group in self.optimizer.param_groups:
                    group["lr"] *= t.lr_decay
            # a batch: sampled without replacement within an epoch, inputs as the network sees them; on a stream,
            # from the contexts its schedule mixes at this step, labelled with the last context it can hold
            if stream is not None:
                x, y, ids = stream.next(self.steps + it)
                seen = stream.seen(self.steps + it)
            else:
                idx = sampler.next() if rows is None else rows[sampler.next()]  # (B,) rows of the training set
                x, y, seen = context.inputs(context.x_train[idx]), context.y_train[idx], context.index  # (B, C, H, W)
                ids = None if context.context_ids is None else context.context_ids[idx]  # (B,) joint: each one's
            if do_augment:
                x = augment(x, self.generator)
            batch = Batch(x, y, seen, ids)
            # forward and the method's loss (bf16 autocast when asked)
            # (a disabled autocast still costs ~10x a null context each step: entered only when it does something)
            with torch.autocast(self.device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext():
                loss = self.method.loss(batch, info)
            # backward, the method's hooks around the optimiser step (A-GEM projects, SI accumulates)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.method.after_backward(info)
            self.optimizer.step()
            self.method.after_step(info)
            if self.update_every and (self.steps + it + 1) % self.update_every == 0:
                self.consolidate(info, seen)
            # continual evaluation every eval_every steps, and after the stage's last step (its boundary)
            if continual is not None and (continual.due(self.steps + it + 1) or it == iterations - 1):
                continual.evaluate(self.steps + it + 1, stage, seen)
            tail.step(it, loss)  # progress, the NaN check and the stop check, a few times a second
        return self.end_training(stage, tail)

    def start_training(self, stage: int, iterations: int) -> ReportTail:
        """The train phase of a stage begins: its event, and the report tail of its steps (core/engine/loop.py),
        whose reports also carry the continual-evaluation points queued since the last one."""
        self.emit(PhaseStarted(context=stage, phase="train", total=iterations))
        self.sync()
        return ReportTail(iterations, self.config.train.batch_size, self.device, self.emit, context=stage,
                          phase="train", interval=self.config.train.progress_interval, should_stop=self.should_stop,
                          stopped=lambda step: f"stopped in context {stage} at iteration {step}",
                          nonfinite=lambda bad, _: NonFiniteLoss(stage, bad),
                          on_report=lambda _: self.report_curve(stage))

    def end_training(self, stage: int, tail: ReportTail) -> tuple[float, float]:
        """The train phase of a stage ends: its time and the mean loss of its last steps (the record keeps a fixed
        tail of iterations, not the last progress window)."""
        self.sync()
        self.steps += tail.steps
        final_loss = tail.final_loss()
        seconds = time.monotonic() - tail.started
        self.train_s += seconds
        self.samples += tail.steps * tail.batch_size
        self.emit(PhaseFinished(context=stage, phase="train", seconds=seconds))
        return seconds, final_loss

    def consolidate(self, info: ContextInfo, seen: int) -> None:
        """Task-free: the method's boundary work (a Fisher, SI's importance) on the samples drawn since the last
        update, then a fresh start, as van de Ven's --update-every. One read from the device per update (which
        context a task-IL view is of), none per step."""
        assert self.stream is not None
        x, y, ids = self.stream.drawn()
        index = seen
        if self.scenario.kind == "task":  # a task-IL view is of one context: the one drawn most
            index = int(torch.bincount(ids).argmax())
            keep = ids == index
            x, y, ids = x[keep], y[keep], ids[keep]
        window = Context(index, [], (0, 0), x, y, x[:0], y[:0], context_ids=ids)
        update = ContextInfo(info.stage, window, self.previous_model, self.emit, info.progress_interval,
                             self.should_stop)
        self.method.after_context(update)
        self.method.before_context(update)
        self.model.train()

    def report_curve(self, stage: int) -> None:
        """Continual-evaluation points queued since the last report: into the record and out as one event."""
        points = self.continual.flush() if self.continual is not None else []
        if points:
            self.record.acc_curve.extend(points)
            self.emit(CurveEvaluated(context=stage, iterations=[p[0] for p in points],
                                     accuracies=[p[2] for p in points]))

    @torch.inference_mode()
    def evaluate(self, trained: int, stage: int | None = None) -> list[float]:
        """Test accuracy on every context after contexts 0..`trained` (-1: the untrained network)."""
        start = time.monotonic()
        if stage is not None:
            self.emit(PhaseStarted(context=stage, phase="eval", total=len(self.benchmark.contexts)))
        was_training = self.model.training
        self.model.eval()
        bs = self.config.train.eval_batch_size
        # class-IL's side figures (core/runs/metrics.py's SIDE_MATRICES): task-aware, top-5, the method's other rule
        side = stage is not None and self.scenario.kind == "class" and not self.config.benchmark.regression
        top5 = side and self.scenario.total_classes > 10
        sums, side_sums, counts = [], [], []
        for context in self.benchmark.contexts:
            self.check_stop()  # between contexts: a slow evaluation (a ResNet on a CPU) stays stoppable
            total = torch.zeros(3, device=self.device)
            hits: dict[str, Tensor] = {}  # side figure -> hits on this context, on the device
            lo, hi = self.scenario.labels(context.index)
            for i in range(0, context.x_test.shape[0], bs):
                x, y = context.inputs(context.x_test[i : i + bs]), context.y_test[i : i + bs]
                scores = self.method.predict(x, context.index)
                if scores is None:
                    scores = self.model(x)
                view = self.scenario.eval_view(scores, y, context.index, trained)
                total += self.scenario.tally(*view)
                if not side:
                    continue
                found = {"task": (scores[:, lo:hi].argmax(1) == y - lo).sum()}
                if top5:
                    best = view[0].topk(min(5, view[0].shape[1]), dim=1).indices
                    found["top5"] = (best == view[1].unsqueeze(1)).any(1).sum()
                for key, other in self.method.side_scores(x, context.index).items():
                    found[key] = self.scenario.tally(*self.scenario.eval_view(other, y, context.index, trained))[0]
                for key, value in found.items():
                    hits[key] = hits.get(key, 0) + value
            sums.append(total)
            side_sums.append(hits)
            counts.append(context.x_test.shape[0])
        accuracies = [
            round(self.scenario.score(s, n), 6) for s, n in zip(torch.stack(sums).tolist(), counts, strict=False)
        ]
        if side:  # one read for the side rows too
            keys = list(side_sums[0])
            table = torch.stack([torch.stack([torch.as_tensor(h[k], dtype=torch.float32, device=self.device)
                                              for k in keys]) for h in side_sums]).tolist()
            self.side_rows = {k: [round(row[i] / max(n, 1), 6) for row, n in zip(table, counts, strict=True)]
                              for i, k in enumerate(keys)}
        self.model.train(was_training)
        seconds = time.monotonic() - start
        self.eval_s += seconds
        if stage is not None:
            self.emit(PhaseFinished(context=stage, phase="eval", seconds=seconds))
        return accuracies

    @torch.inference_mode()
    def record_validation(self, stage: int, trained: int) -> None:
        """benchmark.validation: accuracy on every context's held-out training samples after `stage`, kept in
        run.json as `val_matrix` (rows as acc_matrix's), beside the test accuracy; tuning reads it, never the test."""
        if not self.config.benchmark.validation:
            return
        was_training = self.model.training
        self.model.eval()
        bs = self.config.train.eval_batch_size
        sums, counts = [], []
        for context in self.benchmark.contexts:
            x_val, y_val = context.x_val, context.y_val
            assert x_val is not None and y_val is not None
            total = torch.zeros(3, device=self.device)
            for i in range(0, x_val.shape[0], bs):
                x = context.inputs(x_val[i : i + bs])
                scores = self.method.predict(x, context.index)
                if scores is None:
                    scores = self.model(x)
                view = self.scenario.eval_view(scores, y_val[i : i + bs], context.index, trained)
                total += self.scenario.tally(*view)
            sums.append(total)
            counts.append(x_val.shape[0])
        self.model.train(was_training)
        row = [round(self.scenario.score(s, n), 6) for s, n in zip(torch.stack(sums).tolist(), counts, strict=False)]
        # a resumed run trims rows past the stage it continues from, as the record does with acc_matrix
        self.record.val_matrix = list(getattr(self.record, "val_matrix", None) or [])[:stage] + [row]

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def checkpoint(self, stage: int, row: ContextRow, accuracies: list[float]) -> None:
        keep = self.config.train.checkpoints
        if keep == "none":
            return
        folder = inside(self.run_dir, "checkpoints")
        folder.mkdir(exist_ok=True)
        state = {
            "context": stage,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_params": self.optimizer_names(),
            "method": self.method.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "generator": self.generator.get_state()},
            "record": {"contexts": [c.model_dump(mode="json") for c in self.record.contexts + [row]],
                       "acc_matrix": self.record.acc_matrix + [accuracies], "acc_init": self.record.acc_init,
                       **{f"{key}_matrix": getattr(self.record, f"{key}_matrix") + ([self.side_rows[key]] if key in
                                                                                    self.side_rows else [])
                          for key in SIDE_MATRICES},
                       "acc_curve": [list(p) for p in self.record.acc_curve]},
        }
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        path = inside(folder.parent, folder.name, f"context-{stage}.pt")
        tmp = inside(folder.parent, folder.name, f"context-{stage}.pt.tmp")
        try:
            # Our own file object: on a failure it is closed here, so removing the .tmp frees its space (a file
            # torch opened itself stays open in the exception's frames, and a full disk stays full).
            with open_checked(tmp, "wb") as f:
                torch.save(state, f)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as e:  # torch.save reports a full disk as a RuntimeError
            tmp.unlink(missing_ok=True)
            error = e if isinstance(e, OSError) else OSError(errno.EIO, str(e).splitlines()[0][:200])
            # torch.save words a full disk as a zip-writer error ("unexpected pos"): ask the disk instead.
            if not isinstance(e, OSError) and shutil.disk_usage(folder).free < FULL_DISK_BYTES:
                error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise StoreWriteError(str(path), error, len(self.record.acc_matrix), self.run_dir.name) from None
        if keep == "last":  # only once the new one is safely on disk
            for _, old in checkpoint_files(folder):
                if old != path:
                    old.unlink(missing_ok=True)  # a name, never followed: a link is removed itself

    def finish(self, status: str, error: RunError | None = None) -> str | None:
        """Record how the run ended; the reason run.json could not be written, if it could not (a full disk:
        the record on disk keeps every context completed before)."""
        timing = {
            "total_s": round(self.elapsed(), 3), "train_s": round(self.train_s, 3), "eval_s": round(self.eval_s, 3),
            "samples_per_s": round(self.samples / self.train_s, 1) if self.train_s else None,
        }
        if self.continual is not None:  # points a cancel or failure left unread
            self.record.acc_curve.extend(self.continual.flush())
        self.record.end(status, error, validation_metrics(self.record), timing)  # type: ignore[arg-type]
        try:
            self.save()
        except StoreWriteError as e:
            return str(e)
        return None


def validation_metrics(record: RunRecord) -> dict[str, float]:
    """Validation accuracy beside the test metrics: `final_avg_val_acc` (the last val_matrix row's mean over
    every context, as final_avg_acc) and `avg_incremental_val_acc`; nothing without benchmark.validation."""
    rows = getattr(record, "val_matrix", None) or []
    if not rows:
        return {}
    val = summarize(rows, once=record.trains_jointly, contexts=record.config.benchmark.get("contexts"),
                    weights=class_weights(record.config.benchmark))
    return {key: round(val[test], 6) for key, test in (("final_avg_val_acc", "final_avg_acc"),
                                                       ("avg_incremental_val_acc", "avg_incremental_acc"))
            if val[test] is not None}
