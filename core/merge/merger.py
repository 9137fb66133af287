"""Merging two trained networks of one architecture (the teachers) into one network of that architecture (the
student): the engine of `cltui merge RUN_A RUN_B`.

Both approaches start from the *joint network*: the teachers side by side, each layer's units the union of both
teachers' units, the cross connections zero, and each head output weighing the teachers that learned its class
(w_A + w_B = 1), so that before any training it computes exactly the teachers' combined logits z_T:

    z_T[n, k] = w_A[n, k] z_A[n, k] + w_B[n, k] z_B[n, k]      (w = 1/2 when both or neither learned it)

w_t[n, k] says whether teacher t learned what is asked: with `data union` (and in domain-IL), the context of
sample n (the teacher that learned it was trained to tell it from every class); with `data same`, the context
of output k (the first teacher's classes have no data, so its outputs of them are the only guide).
    KD_T(z_S, z_T) = T^2 KL(softmax(z_T / T) || softmax(z_S / T))

greedy   the importance of unit u of teacher t is its first-order Taylor score for that teacher's own prediction,
         I_u = E_n |sum_pixels a_u dCE(z_t, argmax z_t)/da_u| (Molchanov et al. 2017), normalised within each
         teacher's layer; each layer keeps its W best units of the 2W (W = the teachers' width), the student
         starts as the joint network cut to them, and imitates the teachers' kept units and outputs:
             L = CE + alpha KD_T(z_S, z_T) + beta sum_l ||a_l^S - a_l^T[kept]||^2 / ||a_l^T||^2
l0       a hard-concrete gate per unit of the joint network (Louizos, Welling & Kingma 2018):
             s = sigmoid((log u - log(1 - u) + log alpha_u) / beta),  z_u = min(1, max(0, s (zeta - gamma) + gamma))
             P[z_u > 0] = sigmoid(log alpha_u - beta log(-gamma / zeta)),  beta = 2/3, (gamma, zeta) = (-0.1, 1.1)
             L = CE + alpha KD_T(z, z_T) + lambda_t sum_l max(0, sum_u P[z_u > 0] - W_l) / W_l
             lambda_t = lambda min(1, t / (warmup T_joint))  (annealed: see Merger.l0_weight)
         trained on the task, the penalty pushes every layer toward half its units; pruning keeps the W units of
         each layer with the largest log alpha (their test-time gate folded into the next layer's weights), which
         is exactly the teachers' architecture.
both     then fine-tune the student with CE + alpha KD_T.

CE covers the outputs of the classes whose data the merge trains on (`data`: `union`, both teachers' training
data; `same`, RUN_B's, the current data: the first teacher's classes then come only through KD_T). The student
is saved as an ordinary run folder (run.json kind `merge`: method.name "merge", one row, both teachers named).

The parts: core/merge/settings.py (the settings), teachers.py (loading and checking the teachers), units.py (the
unit algebra of a chain of layers, the hard-concrete gates), anatomy.py (how each model kind's units are grouped,
joined and cut: one hidden layer per group for the feed-forward models; a residual stage's channels, added to one
another by every identity shortcut, kept or pruned together, their importance summed and one gate per channel);
this module runs the merge and records it. The student loads strictly into a fresh model of the teachers' kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.engine.data import BatchSampler, Benchmark, DataError, augment, build_benchmark
from core.engine.loop import Cancelled, Phase, ReportTail, run_and_record
from core.engine.scenarios import ScenarioView
from core.merge.anatomy import anatomy_of, residual_layout
from core.merge.settings import MergeError, MergeSettings, settings_from
from core.merge.teachers import Teacher, check_compatible, fresh_model, load_teacher, load_weights
from core.merge.units import plan
from core.runs.events import (
    ContextEvaluated,
    ContextStarted,
    Event,
    RunStarted,
    UnitsActive,
)
from core.runs.record import ContextRow, MergeInfo, MergeTeacher, RunError, RunRecord, write_record
from core.runs.store import RunStore
from core.training.train import InputError, describe_device, environment, resolve_device


class Merger:
    """One merge: the teachers, the data, the phases, the record. `run()` below is the entry point."""

    def __init__(self, a: Teacher, b: Teacher, settings: MergeSettings, run_dir: Path, emit: Callable[[Event], None],
                 should_stop: Callable[[], bool] = lambda: False, preset: str | None = None):
        self.a, self.b, self.s, self.run_dir, self.emit, self.should_stop = a, b, settings, run_dir, emit, should_stop
        self.started = time.monotonic()
        self.device = resolve_device(settings.device)
        self.device_name = describe_device(self.device)
        self.batch_size = settings.batch_size or a.train.batch_size
        self.lr = settings.lr or a.train.lr
        learned = sorted(set(a.learned) | set(b.learned)) if settings.data == "union" else b.learned
        self.data_contexts = learned
        config = a.record.config.model_dump(mode="json")
        config["benchmark"] = {**a.benchmark.model_dump(mode="json"),
                               "learn_contexts": None if len(learned) == a.benchmark.contexts else learned}
        config["train"] = {**a.train.model_dump(mode="json"), "seed": settings.seed, "device": settings.device,
                           "batch_size": self.batch_size, "lr": self.lr,
                           "iterations": settings.iterations + settings.finetune_iterations}
        config["method"] = {"name": "merge", "approach": settings.approach, "data": settings.data,
                            "teachers": [a.run_id, b.run_id]}
        self.config = config
        self.record = RunRecord.new(run_dir.name, preset or a.record.preset, config, environment(self.device))
        self.record.merge = MergeInfo(
            approach=settings.approach, data=settings.data, settings=settings.model_dump(mode="json"),
            teachers=[MergeTeacher(id=t.run_id, accuracies=t.record.acc_matrix[-1] if t.record.acc_matrix else [],
                                   final_avg_acc=t.record.metrics.get("final_avg_acc"), learned=t.learned)
                      for t in (a, b)])
        write_record(run_dir, self.record)
        self.phase_s: dict[str, float] = {}
        self.train_s = self.eval_s = 0.0
        self.samples = 0

    # setup ------------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        torch.manual_seed(self.s.seed)
        self.generator = torch.Generator(self.device).manual_seed(self.s.seed)
        cfg = self.a.benchmark.model_copy(update={"learn_contexts": None})
        try:
            self.benchmark: Benchmark = build_benchmark(cfg, self.device)
        except DataError as e:
            raise MergeError(str(e)) from None
        c = self.benchmark.classes_per_context
        self.regression = self.a.benchmark.regression
        self.scenario = ScenarioView(self.a.scenario, c, len(self.benchmark.contexts), regression=self.regression)
        self.teachers = [load_weights(t, self.device) for t in (self.a, self.b)]
        # the training pool: the chosen contexts' training data, inputs as the network sees them
        chosen = [ctx for ctx in self.benchmark.contexts if ctx.index in self.data_contexts]
        self.x = torch.cat([ctx.inputs(ctx.x_train) for ctx in chosen])
        self.y = torch.cat([ctx.y_train for ctx in chosen])
        self.ctx = torch.cat([torch.full((ctx.n_train,), ctx.index, dtype=torch.long, device=self.device)
                              for ctx in chosen])
        heads = self.scenario.head_size
        # which teacher knows what: per output (class/task-IL) or per sample's context (domain-IL)
        known = [torch.tensor([k in t.learned for k in range(len(self.benchmark.contexts))], device=self.device)
                 for t in (self.a, self.b)]
        self.known = [k.float() for k in known]
        owner = torch.arange(heads, device=self.device) // c  # the context each output belongs to
        self.output_owner = owner
        avail = torch.zeros(len(self.benchmark.contexts), dtype=torch.bool, device=self.device)
        avail[self.data_contexts] = True
        self.available = avail[owner] if self.scenario.kind != "domain" else torch.ones(heads, dtype=torch.bool,
                                                                                            device=self.device)
        if self.scenario.kind == "domain":
            w_head = (torch.full((heads,), 0.5, device=self.device),) * 2
        else:
            wa, wb = self.known[0][owner], self.known[1][owner]
            total = wa + wb
            wa = torch.where(total > 0, wa / total.clamp(min=1), torch.full_like(wa, 0.5))
            w_head = (wa, 1 - wa)
        self.w_head = w_head
        self.taught = ((self.known[0] + self.known[1])[owner] > 0).float()  # outputs some teacher learned
        self.anatomy = anatomy_of(self.a.model.kind, self.teachers, w_head, lambda: fresh_model(self.a).to(self.device))
        self.teacher_nets = [net.to(self.device) for net in self.anatomy.teachers]

    # losses -----------------------------------------------------------------------------------------------

    def batch(self, sampler: BatchSampler) -> tuple[Tensor, Tensor, Tensor]:
        idx = sampler.next()
        x = augment(self.x[idx], self.generator) if self.a.benchmark.augment else self.x[idx]  # as the teachers saw it
        return x, self.y[idx], self.ctx[idx]

    @torch.no_grad()
    def teacher_logits(self, x: Tensor, ctx: Tensor) -> Tensor:
        za, zb = (net(x)[0] for net in self.teacher_nets)
        if self.scenario.kind == "domain" or (self.s.data == "union" and not self.regression):
            # the whole head of the teacher that learned the sample's context: it was trained to tell that
            # context from every other class (its outputs of the classes it never saw are no guide elsewhere)
            ka, kb = self.known[0][ctx].unsqueeze(1), self.known[1][ctx].unsqueeze(1)
            total = ka + kb
            wa = torch.where(total > 0, ka / total.clamp(min=1), torch.full_like(ka, 0.5))
            return wa * za + (1 - wa) * zb
        return self.w_head[0] * za + self.w_head[1] * zb

    def task_loss(self, logits: Tensor, y: Tensor, ctx: Tensor, target: Tensor) -> Tensor:
        if self.regression:  # MSE on each sample's own output, and on every output a teacher knows its target
            loss = self.scenario.loss(logits, y, int(ctx.max()), ctx)
            if self.s.kd == 0:
                return loss
            taught = self.taught if self.scenario.kind != "domain" else torch.ones_like(self.taught[:1])
            return loss + self.s.kd * ((logits - target).square() * taught).sum(1).mean() / taught.sum()
        if self.scenario.kind == "class":
            ce = F.cross_entropy(logits.masked_fill(~self.available, float("-inf")), y)
        else:
            view, labels = self.scenario.train_view(logits, y, int(ctx.max()), ctx)
            ce = F.cross_entropy(view, labels)
        if self.s.kd == 0:
            return ce
        t = self.s.temperature
        kd = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(target / t, 1), reduction="batchmean",
                      log_target=True) * t * t
        return ce + self.s.kd * kd

    # phases -----------------------------------------------------------------------------------------------

    def phase(self, name: str, total: int | None) -> Phase:
        """A phase of the merge (core/engine/loop.py): its events, its seconds kept for run.json."""
        return Phase(self.emit, 0, name, total, interval=self.s.progress_interval,
                     check_stop=lambda: self.check_stop(name), seconds=self.phase_s)

    def check_stop(self, where: str) -> None:
        if self.should_stop():
            raise Cancelled(f"stopped in {where}")

    def train(self, name: str, net: nn.Module, steps: int, loss_of: Callable[[Tensor, Tensor, Tensor], Tensor],
              groups: list[dict[str, Any]], on_report: Callable[[int], None] | None = None) -> float | None:
        """`steps` Adam steps of `loss_of(x, y, ctx)`; progress events a few times a second (core/engine/loop.py's
        report tail, which also calls `on_report(step)`); the mean loss of the last steps."""
        if steps == 0:
            return None
        optimizer = torch.optim.Adam(groups)
        sampler = BatchSampler(self.x.shape[0], self.batch_size, self.generator, self.device)
        net.train()
        with self.phase(name, steps):
            tail = ReportTail(steps, sampler.batch_size, self.device, self.emit, context=0, phase=name,
                              interval=self.s.progress_interval, should_stop=self.should_stop,
                              stopped=lambda step: f"stopped in {name} at step {step}",
                              nonfinite=lambda _, step: FloatingPointError(
                                  f"loss became NaN or infinite in {name} at step {step}; lower --set lr="),
                              on_report=on_report)
            for it in range(steps):
                x, y, ctx = self.batch(sampler)
                loss = loss_of(x, y, ctx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                tail.step(it, loss)
        self.train_s += time.monotonic() - tail.started
        self.samples += steps * sampler.batch_size
        return tail.final_loss()

    def importance(self) -> list[Tensor]:
        """Per hidden layer, the normalised Taylor importance of the joint network's units (A's, then B's)."""
        n = self.s.importance_batches
        scores: list[list[Tensor]] = [[], []]
        sampler = BatchSampler(self.x.shape[0], self.batch_size, self.generator, self.device)
        batches = [self.batch(sampler)[0] for _ in range(n)]
        with self.phase("importance", 2 * n) as ph:
            for t, net in enumerate(self.teacher_nets):
                total = [torch.zeros(w, device=self.device) for w in self.anatomy.widths]
                for k, x in enumerate(batches):
                    logits, acts = net(x.detach().requires_grad_(True))  # the teacher is frozen; its units are not
                    if self.regression:  # a unit's first-order share of the outputs the teacher learned
                        loss = (logits.square() * self.known[t][self.output_owner]).sum() / 2
                    else:
                        loss = F.cross_entropy(logits, logits.argmax(1).detach(), reduction="sum")
                    grads = torch.autograd.grad(loss, acts)
                    for group, a, g in zip(self.anatomy.act_groups, acts, grads, strict=True):
                        taylor = (a * g).flatten(2).sum(2) if a.dim() > 2 else a * g  # (N, units)
                        total[group] += taylor.abs().sum(0).detach()
                    ph(t * n + k + 1)
                scores[t] = [s / s.sum().clamp(min=1e-12) for s in total]
        return [torch.cat([sa, sb]) for sa, sb in zip(*scores, strict=True)]

    def greedy(self) -> list[dict[str, Tensor]]:
        scores = self.importance()
        keep = [s.topk(w).indices.sort().values for s, w in zip(scores, self.widths, strict=True)]
        self.kept_from_a = [int((k < w).sum()) for k, w in zip(keep, self.widths, strict=True)]
        joint = self.anatomy.joint().to(self.device).eval().requires_grad_(False)
        student = self.anatomy.student(self.anatomy.pruned_state(joint, keep)).to(self.device)
        groups = self.anatomy.act_groups

        def loss_of(x: Tensor, y: Tensor, ctx: Tensor) -> Tensor:
            logits, acts = student(x)
            target = self.teacher_logits(x, ctx)
            loss = self.task_loss(logits, y, ctx, target)
            if self.s.features:
                with torch.no_grad():
                    _, wide = joint(x)
                imitation = sum(((a - t[:, keep[g]]) ** 2).mean() / ((t[:, keep[g]] ** 2).mean() + 1e-6)
                                for a, t, g in zip(acts, wide, groups, strict=True))
                loss = loss + self.s.features * imitation / len(acts)
            return loss

        self.final_losses["imitation"] = self.train("imitation", student, self.s.iterations, loss_of,
                                                    [{"params": student.parameters(), "lr": self.lr}])
        return self.anatomy.state_of(student)

    def l0_penalty(self, open_p: list[Tensor]) -> Tensor:
        return sum(F.relu(p.sum() - w) / w for p, w in zip(open_p, self.widths, strict=True))

    def l0_weight(self, step: int) -> float:
        """lambda, rising linearly over the first `l0_warmup` of joint training: at full strength from the start,
        the penalty is met by every gate of a layer settling near P = 1/2, all still open at test time, and pruning
        then cuts open units; the ramp lets the task sort the units before the penalty closes the unneeded ones."""
        ramp = self.s.l0_warmup * self.s.iterations
        return self.s.l0_lambda * (min(1.0, step / ramp) if ramp > 0 else 1.0)

    def l0(self) -> list[dict[str, Tensor]]:
        net = self.anatomy.joint(self.s.gate_init).to(self.device)
        names = self.layer_names
        wide = dict(zip(names, [int(la.shape[0]) for la in net.log_alpha], strict=True))
        keep_n = dict(zip(names, self.widths, strict=True))
        history: list[dict[str, Any]] = []

        def active() -> dict[str, int]:
            with torch.no_grad():
                return {n: int((z > 0).sum()) for n, z in zip(names, net.gates(sample=False), strict=True)}

        def report(step: int) -> None:
            now = active()
            history.append({"step": step, "active": now})
            self.emit(UnitsActive(context=0, step=step, total=self.s.iterations, active=now, widths=wide, keep=keep_n))

        step = [0]

        def loss_of(x: Tensor, y: Tensor, ctx: Tensor) -> Tensor:
            logits, _ = net(x)
            loss = self.task_loss(logits, y, ctx, self.teacher_logits(x, ctx))
            step[0] += 1
            return loss + self.l0_weight(step[0]) * self.l0_penalty(net.open_probability())

        report(0)
        weights = [p for n, p in net.named_parameters() if not n.startswith("log_alpha")]
        self.final_losses["joint-l0"] = self.train(
            "joint-l0", net, self.s.iterations, loss_of,
            [{"params": weights, "lr": self.lr}, {"params": list(net.log_alpha), "lr": self.s.gate_lr}], report)
        self.record.merge.active_units = history  # type: ignore[union-attr]
        with self.phase("pruning", len(names)) as ph, torch.no_grad():
            z = net.gates(sample=False)
            keep = [la.topk(w).indices.sort().values for la, w in zip(net.log_alpha, self.widths, strict=True)]
            self.kept_from_a = [int((k < w).sum()) for k, w in zip(keep, self.widths, strict=True)]
            self.pruned_open = {n: int((zl > 0).sum()) - int((zl[k] > 0).sum())
                                for n, zl, k in zip(names, z, keep, strict=True)}
            # a kept unit's test-time gate is a constant factor >= 0: folded into the weights that read it (chain)
            # or into the BatchNorms that make its channel (residual)
            student = self.anatomy.pruned_state(net, keep)
            ph(len(names))
        return student

    @torch.inference_mode()
    def evaluate(self, model: nn.Module) -> list[float]:
        start = time.monotonic()
        model.eval()
        last = len(self.benchmark.contexts) - 1
        out = []
        for context in self.benchmark.contexts:
            total = torch.zeros(3, device=self.device)
            for i in range(0, context.x_test.shape[0], self.s.eval_batch_size):
                x = context.inputs(context.x_test[i: i + self.s.eval_batch_size])
                view = self.scenario.eval_view(model(x), context.y_test[i: i + self.s.eval_batch_size],
                                               context.index, last)
                total += self.scenario.tally(*view)
            out.append((total, context.x_test.shape[0]))
        self.eval_s += time.monotonic() - start
        return [round(self.scenario.score(t.tolist(), n), 6) for t, n in out]

    def run(self) -> None:
        s = self.s
        self.prepare()
        self.layer_names, self.widths = self.anatomy.names, self.anatomy.widths
        self.record.merge.widths = dict(zip(self.layer_names, self.widths, strict=True))  # type: ignore[union-attr]
        self.final_losses: dict[str, float | None] = {}
        contexts = self.benchmark.contexts
        self.emit(RunStarted(run_id=self.run_dir.name, contexts=len(contexts), device=self.device_name,
                             config=self.config))
        steps = s.iterations + s.finetune_iterations
        classes = [k for ctx in contexts if ctx.index in self.data_contexts for k in ctx.classes]
        self.emit(ContextStarted(context=0, classes=classes, iterations=steps))
        start = time.monotonic()
        state = self.greedy() if s.approach == "greedy" else self.l0()
        student = fresh_model(self.a)
        # exactly the teachers' architecture: every tensor's shape must match a fresh model of their kind
        student.load_state_dict(state, strict=True)
        student.to(self.device)
        merged_acc = self.evaluate(student)

        def loss_of(x: Tensor, y: Tensor, ctx: Tensor) -> Tensor:
            return self.task_loss(student(x), y, ctx, self.teacher_logits(x, ctx))

        self.final_losses["fine-tune"] = self.train("fine-tune", student, s.finetune_iterations, loss_of,
                                                    [{"params": student.parameters(), "lr": self.lr}])
        train_s = time.monotonic() - start
        with self.phase("eval", len(contexts)):
            accuracies = self.evaluate(student)
        final_loss = self.final_losses.get("fine-tune") or self.final_losses.get(
            "imitation" if s.approach == "greedy" else "joint-l0")
        self.save_checkpoint(student)
        row = ContextRow(index=0, classes=classes, train_s=round(train_s, 4), iterations=steps,
                         final_loss=final_loss, elapsed_s=round(time.monotonic() - self.started, 3))
        info = self.record.merge
        assert info is not None
        info.phases = {k: round(v, 3) for k, v in self.phase_s.items()}
        extra = {"accuracy_before_finetune": merged_acc, "kept_from_first": dict(zip(self.layer_names,
                                                                                      self.kept_from_a, strict=True))}
        if s.approach == "l0":
            extra["open_gates_pruned"] = self.pruned_open
        for key, value in extra.items():
            setattr(info, key, value)
        self.record.context_completed(row, accuracies)
        write_record(self.run_dir, self.record)
        self.emit(ContextEvaluated(context=0, accuracies=accuracies, train_s=train_s, final_loss=final_loss))

    def save_checkpoint(self, student: nn.Module) -> None:
        folder = self.run_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        path = folder / "context-0.pt"
        tmp = path.with_suffix(".pt.tmp")
        with open(tmp, "wb") as f:
            torch.save({"context": 0, "model": student.state_dict()}, f)
        tmp.replace(path)

    def finish(self, status: str, error: RunError | None = None) -> None:
        """Record how the merge ended in run.json (a write that fails raises)."""
        timing = {"total_s": round(time.monotonic() - self.started, 3), "train_s": round(self.train_s, 3),
                  "eval_s": round(self.eval_s, 3),
                  "samples_per_s": round(self.samples / self.train_s, 1) if self.train_s else None}
        if self.record.merge is not None:
            self.record.merge.phases = {k: round(v, 3) for k, v in self.phase_s.items()}
        self.record.end(status, error, None, timing)  # type: ignore[arg-type]
        write_record(self.run_dir, self.record)


def merge(a: Teacher, b: Teacher, settings: MergeSettings, run_dir: Path,
          emit: Callable[[Event], None] = lambda e: None, should_stop: Callable[[], bool] = lambda: False,
          preset: str | None = None) -> dict[str, Any]:
    """Merge two checked teachers into a student saved in `run_dir` (which must exist); the final record. Bad
    input found late (a device that is not there, unreadable data) raises MergeError before anything runs."""
    try:
        merger = Merger(a, b, settings, run_dir, emit, should_stop, preset)
    except InputError as e:
        raise MergeError(str(e)) from None

    def ended(_: Merger | None, status: str, error: RunError) -> tuple[RunRecord, str | None]:
        return merger.record, merger.finish(status, error)

    # the run lifecycle of every run (core/engine/loop.py); a MergeError found late is bad input, raised as it is
    return run_and_record(lambda: merger, emit, ended, plain=(FloatingPointError,), raises=(MergeError,))


def check_teachers(store: RunStore, run_a: str, run_b: str) -> tuple[Teacher, Teacher]:
    """Both teachers loaded and checked (finished, a checkpoint, one architecture, a supported model whose
    checkpoint fits it); MergeError or StoreError with one line otherwise."""
    a, b = load_teacher(store, run_a), load_teacher(store, run_b)
    check_compatible(a, b)
    model = fresh_model(a)
    residual_layout(model) if a.model.kind.startswith("resnet") else plan(model)  # one the merge can take apart
    for t in (a, b):
        load_weights(t, torch.device("cpu"))
    return a, b


# what `cltui merge` (cltui/cli/merging.py) and benchmarks/merge.py call
__all__ = ["MergeError", "MergeSettings", "Merger", "Teacher", "check_teachers", "load_teacher", "merge",
           "settings_from"]
