"""The training loop over contexts: data on the device, a method's hooks, evaluation on every context,
events out, run.json and checkpoints on disk.

`run(config, run_dir, emit)` runs in the worker process (core/worker.py) but works in any process.
It always ends by writing run.json with status finished, failed or cancelled, and emitting the
matching terminal event; it raises only for problems with its arguments.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.config import RunConfig
from core.data import BatchSampler, Benchmark, DataError, augment, build_benchmark
from core.events import (
    ContextEvaluated,
    ContextStarted,
    DreamsSaved,
    Event,
    PhaseFinished,
    PhaseStarted,
    Progress,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
)
from core.methods import method_class
from core.methods.base import Batch, ContextInfo, Method
from core.metrics import summarize
from core.scenarios import ScenarioView
from core.store import new_run_record, now_iso, read_run_json, write_json_atomic

FINAL_LOSS_TAIL = 10  # iterations averaged into a context's recorded final_loss


class Cancelled(Exception):
    """The user (or a dying parent process) asked the run to stop."""


class NonFiniteLoss(Exception):
    def __init__(self, context: int, iteration: int):
        super().__init__(f"loss became NaN or infinite in context {context} at iteration {iteration}; "
                         f"lower train.lr or the method's strength")
        self.context, self.iteration = context, iteration


class InputError(Exception):
    """Bad input found only once the worker looked (missing device, unreadable data): exit code 2."""


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"train.device: {spec} asked for but no CUDA device is visible; use --device cpu")
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
            "device": describe_device(device), "host": platform.node()}


class Trainer:
    """Holds everything of one run; `run()` below is the entry point."""

    def __init__(self, config: RunConfig, run_dir: Path, emit: Callable[[Event], None],
                 should_stop: Callable[[], bool], benchmark: Benchmark | None = None, resume: bool = False):
        self.config, self.run_dir, self.emit, self.should_stop = config, run_dir, emit, should_stop
        self.started = time.monotonic()
        self.device = resolve_device(config.train.device)
        self.record = new_run_record(run_dir.name, config.preset, config.to_dict(), environment(self.device))
        if resume:  # keep what the interrupted run recorded; rows past the last checkpoint are dropped below
            previous = read_run_json(run_dir)
            self.record.update({k: previous[k] for k in ("created", "contexts", "acc_init", "acc_matrix", "dreams")
                                if k in previous})
            self.record["resumed"] = previous.get("resumed", []) + [{"at": now_iso(), "status": previous["status"]}]
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
        self.scenario = ScenarioView(config.scenario, self.benchmark.classes_per_context, len(self.benchmark.contexts))
        # Initialise on the CPU with the run's seed, so a seed means the same network on every device.
        method_cls = method_class(config.method.name)
        self.model: nn.Module = method_cls.build_model(config, self.benchmark.input_shape, self.scenario.head_size)
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
        self.judge: Any = None  # core.dreams.DreamJudge, made when a method first dreams
        self.eval_s = 0.0
        self.train_s = 0.0
        self.samples = 0
        self.first_stage = self.restore() if resume else 0

    def restore(self) -> int:
        """Load the last context checkpoint (model, optimiser, method and random states); the stage to run next."""
        checkpoints = sorted((self.run_dir / "checkpoints").glob("context-*.pt"),
                             key=lambda p: int(p.stem.removeprefix("context-")))
        if not checkpoints:  # nothing completed: start over in the same folder
            self.record.update(contexts=[], acc_init=None, acc_matrix=[])
            return 0
        state = torch.load(checkpoints[-1], map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.load_state_dict(state["method"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.generator.set_state(state["rng"]["generator"])
        done = state["context"] + 1
        if self.method.needs_previous_model:
            self.previous_model = frozen_copy(self.model)
        self.record["contexts"] = self.record["contexts"][:done]
        self.record["acc_matrix"] = self.record["acc_matrix"][:done]
        self.record["dreams"] = [d for d in self.record.get("dreams", []) if d.get("context", done) < done]
        self.train_s = sum(c.get("train_s", 0.0) for c in self.record["contexts"])
        self.samples = sum(c.get("iterations", 0) for c in self.record["contexts"]) * self.config.train.batch_size
        return done

    def make_optimizer(self) -> torch.optim.Optimizer:
        t = self.config.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        if t.optimizer == "adam":
            return torch.optim.Adam(params, lr=t.lr, betas=(0.9, 0.999), weight_decay=t.weight_decay)
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)

    def save(self) -> None:
        write_json_atomic(self.run_dir / "run.json", self.record)

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        cfg = self.config
        stages = ([self.benchmark.joint()] if self.method.trains_jointly else self.benchmark.contexts)
        iterations = cfg.train.iterations * (len(self.benchmark.contexts) if self.method.trains_jointly else 1)
        self.emit(RunStarted(run_id=self.run_dir.name, contexts=len(stages), device=describe_device(self.device),
                             config=cfg.to_dict(), resumed_from=self.first_stage or None))
        if self.record["acc_init"] is None:
            self.record["acc_init"] = self.evaluate(trained=-1)
        for stage, context in enumerate(stages):
            if stage < self.first_stage:
                continue
            self.emit(ContextStarted(context=stage, classes=context.classes, iterations=iterations))
            info = ContextInfo(stage, context, self.previous_model, self.emit, cfg.train.progress_interval)
            if cfg.train.reset_optimizer and stage > 0:
                self.optimizer = self.make_optimizer()
            self.method.before_context(info)
            train_s, final_loss = self.train_context(info, iterations)
            self.method.after_context(info)
            dreams = self.record_dreams(stage, info)
            if self.method.needs_previous_model:
                self.previous_model = frozen_copy(self.model)
            accuracies = self.evaluate(trained=context.index, stage=stage)
            self.record["acc_matrix"].append(accuracies)
            self.record["contexts"].append({
                "index": stage, "classes": context.classes, "train_s": round(train_s, 4),
                "iterations": iterations, "final_loss": final_loss,
            })
            self.checkpoint(stage)
            self.record["metrics"] = summarize(self.record["acc_matrix"], self.record["acc_init"])
            self.save()  # on disk before anyone hears of it: a context reported done survives a kill
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
        from core.dreams import DreamJudge

        if self.judge is None:
            self.judge = DreamJudge(self.config, self.benchmark, self.device)
        self.judge.train_verifier(info)  # once per run, its own phase
        with info.phase("dream-quality"):
            entry = self.judge.record(self.run_dir, stage, dreams, info)
        self.record["dreams"] = [d for d in self.record["dreams"] if d["context"] != stage] + [entry]
        return entry

    def train_context(self, info: ContextInfo, iterations: int) -> tuple[float, float | None]:
        t = self.config.train
        context, stage = info.context, info.stage
        self.model.train()
        sampler = BatchSampler(context.n_train, t.batch_size, self.generator, self.device)
        losses = torch.zeros(iterations, device=self.device)  # on the device: read only when a report is due
        use_bf16 = t.precision == "bf16" and self.device.type == "cuda"
        do_augment = self.config.benchmark.augment
        for group in self.optimizer.param_groups:  # each context starts at the base rate
            group["lr"] = t.lr
        decay_at = {round(f * iterations) for f in t.lr_decay_at}
        self.emit(PhaseStarted(context=stage, phase="train", total=iterations))
        self.sync()
        start = last_report = time.monotonic()
        reported = 0
        final_loss = None
        for it in range(iterations):
            if it in decay_at:
                for group in self.optimizer.param_groups:
                    group["lr"] *= t.lr_decay
            idx = sampler.next()
            x = context.inputs(context.x_train[idx])
            if do_augment:
                x = augment(x, self.generator)
            ids = None if context.context_ids is None else context.context_ids[idx]
            batch = Batch(x, context.y_train[idx], context.index, ids)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = self.method.loss(batch, info)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.method.after_backward(info)
            self.optimizer.step()
            self.method.after_step(info)
            losses[it] = loss.detach()
            now = time.monotonic()
            if now - last_report >= t.progress_interval or it == iterations - 1:
                window = losses[reported : it + 1]
                final_loss = window.mean().item()  # the one host sync, a few times a second
                if not math.isfinite(final_loss):
                    bad = int((~torch.isfinite(window)).nonzero()[0])
                    raise NonFiniteLoss(stage, reported + bad)
                rate = (it + 1 - reported) * sampler.batch_size / max(now - last_report, 1e-9)
                self.emit(Progress(context=stage, phase="train", step=it + 1, total=iterations,
                                   loss=final_loss, samples_per_s=rate))
                reported, last_report = it + 1, now
                if self.should_stop():
                    raise Cancelled(f"stopped in context {stage} at iteration {it + 1}")
        self.sync()
        # The record keeps the mean loss of a fixed tail of iterations: the last progress window ends at
        # the same iteration but starts wherever the clock put the report before it.
        final_loss = losses[-min(iterations, FINAL_LOSS_TAIL):].mean().item()
        seconds = time.monotonic() - start
        self.train_s += seconds
        self.samples += iterations * sampler.batch_size
        self.emit(PhaseFinished(context=stage, phase="train", seconds=seconds))
        return seconds, final_loss

    @torch.inference_mode()
    def evaluate(self, trained: int, stage: int | None = None) -> list[float]:
        """Test accuracy on every context after contexts 0..`trained` (-1: the untrained network)."""
        start = time.monotonic()
        if stage is not None:
            self.emit(PhaseStarted(context=stage, phase="eval", total=len(self.benchmark.contexts)))
        was_training = self.model.training
        self.model.eval()
        bs = self.config.train.eval_batch_size
        correct, counts = [], []
        for context in self.benchmark.contexts:
            hits = torch.zeros((), dtype=torch.long, device=self.device)
            for i in range(0, context.x_test.shape[0], bs):
                x = context.inputs(context.x_test[i : i + bs])
                scores = self.method.predict(x, context.index)
                if scores is None:
                    scores = self.model(x)
                logits, target = self.scenario.eval_view(scores, context.y_test[i : i + bs], context.index, trained)
                hits += (logits.argmax(1) == target).sum()
            correct.append(hits)
            counts.append(max(context.x_test.shape[0], 1))
        accuracies = [round(c / n, 6) for c, n in zip(torch.stack(correct).tolist(), counts)]
        self.model.train(was_training)
        seconds = time.monotonic() - start
        self.eval_s += seconds
        if stage is not None:
            self.emit(PhaseFinished(context=stage, phase="eval", seconds=seconds))
        return accuracies

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def checkpoint(self, stage: int) -> None:
        keep = self.config.train.checkpoints
        if keep == "none":
            return
        folder = self.run_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        state = {
            "context": stage,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "method": self.method.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "generator": self.generator.get_state()},
        }
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        path = folder / f"context-{stage}.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        if keep == "last":
            for old in folder.glob("context-*.pt"):
                if old != path:
                    old.unlink(missing_ok=True)

    def finish(self, status: str, error: dict[str, Any] | None = None) -> None:
        total = time.monotonic() - self.started
        self.record.update(status=status, finished=now_iso(), error=error)
        self.record["metrics"] = summarize(self.record["acc_matrix"], self.record["acc_init"])
        self.record["timing"] = {
            "total_s": round(total, 3), "train_s": round(self.train_s, 3), "eval_s": round(self.eval_s, 3),
            "samples_per_s": round(self.samples / self.train_s, 1) if self.train_s else None,
        }
        self.save()


def frozen_copy(model: nn.Module) -> nn.Module:
    old = copy.deepcopy(model)
    old.eval()
    old.requires_grad_(False)
    return old


def run(config: RunConfig, run_dir: Path, emit: Callable[[Event], None] = lambda e: None,
        should_stop: Callable[[], bool] = lambda: False, benchmark: Benchmark | None = None,
        resume: bool = False) -> dict[str, Any]:
    """Train `config` into `run_dir` (which must exist); returns the final run record. With `resume`, continue
    the run saved there from its last completed context."""
    trainer: Trainer | None = None
    try:
        trainer = Trainer(config, run_dir, emit, should_stop, benchmark, resume)
        trainer.run()
    except (Cancelled, KeyboardInterrupt) as e:
        reason = str(e) or "interrupted"
        if trainer is None:
            record = new_run_record(run_dir.name, config.preset, config.to_dict(), {})
            record.update(status="cancelled", finished=now_iso(), error={"message": reason, "kind": "cancelled"})
            write_json_atomic(run_dir / "run.json", record)
        else:
            trainer.finish("cancelled", {"message": reason, "kind": "cancelled"})
            record = trainer.record
        emit(RunCancelled(reason=reason, context=len(record["acc_matrix"])))
        if isinstance(e, KeyboardInterrupt):
            raise
        return record
    except Exception as e:  # noqa: BLE001 - every failure must land in run.json
        kind = "input" if isinstance(e, InputError) else "error"
        message = str(e) if isinstance(e, (InputError, NonFiniteLoss)) else f"{type(e).__name__}: {e}"
        error = {"message": message, "kind": kind, "traceback": traceback.format_exc(),
                 "context": getattr(e, "context", None), "iteration": getattr(e, "iteration", None)}
        if trainer is None:
            record = new_run_record(run_dir.name, config.preset, config.to_dict(), {})
            record.update(status="failed", finished=now_iso(), error=error)
            write_json_atomic(run_dir / "run.json", record)
        else:
            trainer.finish("failed", error)
            record = trainer.record
        emit(RunFailed(error=message, traceback=error["traceback"], context=error["context"],
                       iteration=error["iteration"], kind=kind))
        return record
    trainer.finish("finished")
    emit(RunFinished(metrics=trainer.record["metrics"], total_s=trainer.record["timing"]["total_s"]))
    return trainer.record

