"""Each method's typed hyper-parameters, torch-free: config validation, the CLI's help and the TUI's
compose form read them without importing torch; the algorithm lives in core/methods/<name>.py as
`class EWC(Method[EWCParams])`.

A parameter class with a `name` registers itself in METHOD_PARAMS (the order here is the order of the
CLI's help and the compose form); its `scenarios` say where the method works.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from pydantic import Field, field_validator

from core.schema.limits import (
    MAX_BATCH,
    MAX_DREAMS_PER_CLASS,
    MAX_IMAGE_SIDE,
    MAX_ITERATIONS,
    MAX_LAYERS,
    MAX_LR,
    MAX_SAMPLES,
    MAX_STORED_SAMPLES,
    MAX_WIDTH,
    SCENARIOS,
    Section,
    check_size,
    check_widths,
    dense_parameters,
    model_parameters,
    show,
    vae_parameters,
)

if TYPE_CHECKING:
    from core.schema.limits import Scenario
    from core.schema.sections import BenchmarkConfig, ModelConfig, TrainConfig


class RunConfig(Protocol):
    """What a method's parameters check themselves against: the rest of the run's config (core.schema.config's
    RunConfig, which holds these parameters; a protocol here, so that the two modules do not import each other)."""

    benchmark: BenchmarkConfig
    model: ModelConfig
    train: TrainConfig
    scenario: Scenario

    @property
    def head_size(self) -> int: ...

METHOD_PARAMS: dict[str, type[MethodParams]] = {}
RESNETS = ("resnet20", "resnet32", "resnet56", "resnet18-reduced")  # the models with stages (core/engine/models.py)


class MethodParams(Section):
    name: str
    summary: ClassVar[str] = ""
    scenarios: ClassVar[tuple[str, ...]] = SCENARIOS
    task_free: ClassVar[bool] = False  # works on a stream without context boundaries (benchmark.stream)
    # reads every context's classes from the scenario, so an uneven first context (first_context_classes) is
    # safe; the others still count c classes per context in their own arithmetic
    uneven_contexts: ClassVar[bool] = False

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: object) -> None:
        """A class that names its method (name: Literal["ewc"] = "ewc") is registered; shared bases are not."""
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.model_fields["name"].default
        if isinstance(name, str):
            METHOD_PARAMS[name] = cls

    def resolve(self, config: RunConfig) -> None:
        """Check values that need the whole config; raise ValueError naming the field."""


class NoneParams(MethodParams):
    """Fine-tuning: plain cross-entropy on each context in turn (the lower bound)."""

    name: Literal["none"] = "none"
    summary: ClassVar[str] = "fine-tuning, the lower bound"
    uneven_contexts: ClassVar[bool] = True
    task_free: ClassVar[bool] = True


class JointParams(MethodParams):
    """Joint training: all contexts' data at once, same total iterations (the upper bound)."""

    name: Literal["joint"] = "joint"
    summary: ClassVar[str] = "all contexts at once, the upper bound"
    uneven_contexts: ClassVar[bool] = True

    def resolve(self, config: RunConfig) -> None:
        steps = config.train.iterations * config.benchmark.contexts  # one stage of them all (core/training/train.py)
        if steps > MAX_ITERATIONS:
            raise ValueError(f"train.iterations: joint trains iterations x contexts = {config.train.iterations} x "
                             f"{config.benchmark.contexts} = {steps} steps in one stage; at most {MAX_ITERATIONS}")


class CumulativeParams(MethodParams):
    """Incremental joint training: at context t, train on the data of contexts 1..t ("full replay")."""

    name: Literal["cumulative"] = "cumulative"
    summary: ClassVar[str] = "incremental joint: every context so far, at each context"
    uneven_contexts: ClassVar[bool] = True
    scale_batch: bool = Field(True, description="Draw batch_size samples from each context so far (the batch "
                              "grows with t, as in van de Ven's StabilityGap example); off: batch_size in all.")


class EWCParams(MethodParams):
    """Elastic weight consolidation: a quadratic penalty per context, weighted by the diagonal Fisher."""

    name: Literal["ewc"] = "ewc"
    summary: ClassVar[str] = "elastic weight consolidation (parameter regularisation)"
    uneven_contexts: ClassVar[bool] = True
    task_free: ClassVar[bool] = True  # on a stream: a Fisher every update_every iterations
    lambda_: float | None = Field(None, alias="lambda", ge=0,
                                  description="Penalty strength (presets give the tuned value per scenario).")
    fisher_labels: Literal["all", "sample", "pred", "true"] = Field(
        "all", description="Fisher: all = exact expectation over the predictive distribution; sample, pred "
        "(argmax) or true (empirical Fisher).")
    fisher_n: int | None = Field(None, ge=1, le=MAX_SAMPLES,
                                 description="Samples for the Fisher (none: the whole context).")
    update_every: int = Field(100, ge=1, le=MAX_ITERATIONS, description="Task-free stream (benchmark.stream): "
                              "consolidate every N iterations on what was seen since (van de Ven's --update-every).")

    def resolve(self, config: RunConfig) -> None:
        if self.lambda_ is None:
            raise ValueError(f"method.lambda: no default for {self.name} in this preset; "
                             f"pass --set method.lambda=VALUE (docs/reference.md lists tuned values)")


class OnlineEWCParams(EWCParams):
    """Online EWC: one running Fisher (F <- gamma F + F_new) and one anchor."""

    name: Literal["online-ewc"] = "online-ewc"  # type: ignore[assignment]
    summary: ClassVar[str] = "online EWC: one decayed Fisher, one anchor"
    gamma: float = Field(1.0, ge=0, le=1, description="Decay of the running Fisher.")


class SIParams(MethodParams):
    """Synaptic intelligence: per-parameter importance from the path integral of the data loss."""

    name: Literal["si"] = "si"
    summary: ClassVar[str] = "synaptic intelligence (parameter regularisation)"
    uneven_contexts: ClassVar[bool] = True
    task_free: ClassVar[bool] = True  # on a stream: importance updated every update_every iterations
    c: float | None = Field(None, ge=0, description="Penalty strength (presets give the tuned value per scenario).")
    epsilon: float = Field(0.1, gt=0, description="Damping xi of the importance.")
    update_every: int = Field(100, ge=1, le=MAX_ITERATIONS, description="Task-free stream (benchmark.stream): "
                              "consolidate every N iterations on what was seen since (van de Ven's --update-every).")

    def resolve(self, config: RunConfig) -> None:
        if self.c is None:
            raise ValueError("method.c: no default for si in this preset; pass --set method.c=VALUE")


class LwFParams(MethodParams):
    """Learning without forgetting: distil the previous model's outputs on the current inputs."""

    name: Literal["lwf"] = "lwf"
    summary: ClassVar[str] = "learning without forgetting (distillation)"
    task_free: ClassVar[bool] = True  # on a stream: the teacher is a snapshot taken every update_every iterations
    temperature: float = Field(2.0, gt=0, description="Distillation temperature T.")
    update_every: int = Field(100, ge=1, le=MAX_ITERATIONS, description="Task-free stream (benchmark.stream): "
                              "snapshot the model as the teacher every N iterations (van de Ven's --update-every).")


class XdGParams(MethodParams):
    """Context-dependent gating: a fixed random mask per context over the hidden units."""

    name: Literal["xdg"] = "xdg"
    summary: ClassVar[str] = "context-dependent gating (task-IL)"
    scenarios: ClassVar[tuple[str, ...]] = ("task",)
    gating: float = Field(0.9, ge=0, lt=1, description="Fraction of each hidden layer's units gated off per context.")


class SeparateParams(MethodParams):
    """Separate networks: one small network per context, the parameter budget of the shared one."""

    name: Literal["separate"] = "separate"
    summary: ClassVar[str] = "one network per context (task-IL)"
    scenarios: ClassVar[tuple[str, ...]] = ("task",)
    hidden: list[int] | None = Field(
        None, max_length=MAX_LAYERS, description="Hidden widths of each network (none: scaled so all networks "
        "together have about the shared network's parameters).")

    _widths = field_validator("hidden")(check_widths)

    def resolve(self, config: RunConfig) -> None:
        m, b = config.model, config.benchmark
        if self.hidden is None or m.kind not in ("mlp", "vdv-conv"):
            return
        per_network = model_parameters(m.kind, b.input_shape, b.classes_per_context,  # type: ignore[arg-type]
                                       self.hidden if m.kind == "mlp" else m.hidden,
                                       self.hidden if m.kind == "vdv-conv" else m.fc_hidden)
        check_size("method.hidden", f"a network per context ({b.contexts}) with widths {show(self.hidden)}",
                    b.contexts * (per_network or 0))


class ReplayParams(MethodParams):
    """Shared by the methods that store data: the buffer's budget."""

    task_free: ClassVar[bool] = True  # on a stream the buffer is a reservoir, filled batch by batch
    uneven_contexts: ClassVar[bool] = True

    budget: int | None = Field(None, ge=1, le=MAX_STORED_SAMPLES,
                               description="Stored samples per class (class-balanced buffer).")
    budget_total: int | None = Field(
        None, ge=1, le=MAX_STORED_SAMPLES, description="Stored samples in all (reservoir buffer); replaces budget "
        "when set.")

    def resolve(self, config: RunConfig) -> None:
        if self.budget is None and self.budget_total is None:
            raise ValueError(f"method.budget: no default for {self.name} in this preset; "
                             f"pass --set method.budget=N (per class) or --set method.budget_total=N")
        stored = self.budget_total or self.budget * config.benchmark.total_classes  # type: ignore[operator]
        if stored > MAX_STORED_SAMPLES:
            raise ValueError(f"method.budget: {self.budget} per class x {config.benchmark.total_classes} classes = "
                             f"{stored} stored samples; at most {MAX_STORED_SAMPLES} in all")


class ERParams(ReplayParams):
    """Experience replay: a replay batch from the buffer beside each batch, losses weighted 1/t and 1 - 1/t."""

    name: Literal["er"] = "er"
    summary: ClassVar[str] = "experience replay (stored data)"


class AGEMParams(ReplayParams):
    """A-GEM: project the gradient when it conflicts with the gradient on a replay batch."""

    name: Literal["agem"] = "agem"
    summary: ClassVar[str] = "averaged gradient episodic memory (stored data)"
    epsilon: float = Field(1e-7, gt=0, description="Added to the reference gradient's squared norm.")


class DERPPParams(ReplayParams):
    """DER++: replay stored logits (MSE, alpha) and stored labels (CE, beta)."""

    name: Literal["derpp"] = "derpp"
    summary: ClassVar[str] = "dark experience replay++ (stored data and logits)"
    alpha: float = Field(0.5, ge=0, description="Weight of the logit-matching (MSE) term.")
    beta: float = Field(0.5, ge=0, description="Weight of the replayed labels' cross-entropy.")


class ICaRLParams(ReplayParams):
    """iCaRL: herding exemplars, BCE with distillation targets, nearest-mean-of-exemplars prediction."""

    name: Literal["icarl"] = "icarl"
    summary: ClassVar[str] = "iCaRL (exemplars, nearest mean)"
    task_free: ClassVar[bool] = False  # per-class exemplar sets, chosen at each boundary
    scenarios: ClassVar[tuple[str, ...]] = ("task", "class")
    selection: Literal["herding", "random"] = Field("herding", description="How exemplars are chosen.")
    temperature: float = Field(1.0, gt=0, description="Temperature of the old model's sigmoid targets.")
    replay: Literal["union", "extra-batch"] = Field(
        "union", description="union: each batch drawn from the context's data and the exemplars together (Rebuffi "
        "et al., van de Ven's code); extra-batch: the batch plus an equally large batch of exemplars (twice the "
        "work per step).")


class ERACEParams(ReplayParams):
    """ER-ACE: experience replay whose incoming batch's cross-entropy leaves out the old classes absent from it."""

    name: Literal["er-ace"] = "er-ace"
    summary: ClassVar[str] = "ER with asymmetric cross-entropy (stored data)"
    scenarios: ClassVar[tuple[str, ...]] = ("class",)  # task-IL's heads already leave the other classes out


class ExemplarParams(MethodParams):
    """Shared by the class-IL methods that keep exemplars of every class seen (WA; the bias-correction family):
    a fixed total memory shared equally by the classes seen, or a number per class."""

    scenarios: ClassVar[tuple[str, ...]] = ("class",)
    uneven_contexts: ClassVar[bool] = True
    memory_total: int | None = Field(
        None, ge=1, le=MAX_STORED_SAMPLES, description="Exemplars in all, shared equally by the classes seen: each "
        "keeps memory_total // classes seen, the older ones giving up samples as classes arrive (2000 on CIFAR-100 "
        "in the class-IL papers).")
    budget: int | None = Field(None, ge=1, le=MAX_STORED_SAMPLES,
                               description="Exemplars per class instead (the memory grows with the classes).")
    selection: Literal["herding", "random"] = Field("herding", description="How exemplars are chosen.")

    def resolve(self, config: RunConfig) -> None:
        if self.memory_total is None and self.budget is None:
            raise ValueError(f"method.memory_total: no default for {self.name} in this preset; pass "
                             f"--set method.memory_total=N (in all) or --set method.budget=N (per class)")
        if self.memory_total is not None and self.budget is not None:
            raise ValueError("method.budget: give memory_total (in all) or budget (per class), not both; "
                             "unset one of them")
        if self.budget is not None and self.budget * config.benchmark.total_classes > MAX_STORED_SAMPLES:
            raise ValueError(f"method.budget: {self.budget} per class x {config.benchmark.total_classes} classes = "
                             f"{self.budget * config.benchmark.total_classes} exemplars; at most "
                             f"{MAX_STORED_SAMPLES} in all")


class WAParams(ExemplarParams):
    """Weight aligning: CE and distillation on data and exemplars, then the new classes' head weights rescaled
    to the old classes' mean norm after each context."""

    name: Literal["wa"] = "wa"
    summary: ClassVar[str] = "weight aligning (exemplars, distillation, aligned head norms)"
    temperature: float = Field(2.0, gt=0, description="Distillation temperature T.")
    clip_weights: bool = Field(True, description="Keep the head's weights non-negative after every step (the "
                               "features are ReLU outputs; the authors' code does it by default).")
    bias: bool = Field(False, description="Train the head's bias; off (held at 0) as in the authors' code, so "
                       "aligning the weights scales the new classes' whole logits.")


class BiCParams(ExemplarParams):
    """BiC: CE and distillation on data and exemplars (a share of both held out), then a two-parameter bias
    layer on the new classes' logits fitted on the held-out share after each context."""

    name: Literal["bic"] = "bic"
    summary: ClassVar[str] = "bias correction (exemplars, distillation, a bias layer on new logits)"
    temperature: float = Field(2.0, gt=0, description="Distillation temperature T.")
    val_share: float = Field(0.1, gt=0, lt=1, description="Share of each class's exemplars held out to fit the "
                             "bias layer (the paper's 9:1 split); the new classes hold out as many samples each.")
    bias_epochs: int = Field(250, ge=1, le=MAX_ITERATIONS, description="Passes over the held-out samples that fit "
                             "the bias layer (SGD, momentum 0.9; the rate divided by 10 at 40, 60 and 80%).")
    bias_lr: float = Field(0.1, gt=0, le=MAX_LR, description="The bias layer's first learning rate.")


class LUCIRParams(ExemplarParams):
    """LUCIR: a cosine classifier, a less-forget constraint on normalised features and a margin ranking loss."""

    name: Literal["lucir"] = "lucir"
    summary: ClassVar[str] = "cosine classifier, feature distillation, margin ranking (exemplars)"
    lambda_base: float = Field(5.0, ge=0, description="Weight of the less-forget loss before scaling by "
                               "sqrt(old / new classes) (λ_base).")
    margin: float = Field(0.5, ge=0, description="Margin m of the ranking loss.")
    hard_negatives: int = Field(2, ge=1, le=100, description="The K new classes scoring highest on an old "
                                "class's sample, each ranked below its true class by the margin.")
    sigma: float | None = Field(None, gt=0, description="A fixed scale σ of the cosine logits (none: σ is learned "
                                "from 1, as in the paper).")


class PODNetParams(ExemplarParams):
    """PODNet: pooled-output distillation of every ResNet stage's spatial features and of the embedding, and a
    local similarity classifier of several proxies per class with an NCA loss."""

    name: Literal["podnet"] = "podnet"
    summary: ClassVar[str] = "pooled outputs distillation, local similarity classifier (exemplars; ResNets)"
    lambda_spatial: float = Field(3.0, ge=0, description="Weight λ_c of POD-spatial over the stages (CIFAR: 3).")
    lambda_flat: float = Field(1.0, ge=0, description="Weight λ_f of POD-flat on the embedding.")
    proxies: int = Field(10, ge=1, le=100, description="Proxies K per class of the local similarity classifier.")
    margin: float = Field(0.6, ge=0, description="Margin δ of the NCA loss.")
    eta: float | None = Field(10.0, gt=0, description="Scale η of the classifier's similarities, fixed (none: learned "
                              "from 1, as the paper; on digits the NCA hinge drove it below 0 and every class was "
                              "lost).")
    finetune_epochs: int = Field(20, ge=0, le=MAX_ITERATIONS, description="Passes of the class-balanced "
                                 "finetuning of the classifier on the exemplars after each context (0: none).")
    finetune_lr: float = Field(0.05, gt=0, le=MAX_LR, description="Its learning rate (SGD, momentum 0.9).")

    def resolve(self, config: RunConfig) -> None:
        if config.model.kind not in RESNETS:
            raise ValueError(f"model.kind: podnet pools the spatial outputs of a ResNet's stages; use one of "
                             f"{', '.join(RESNETS)} (this is {config.model.kind})")
        super().resolve(config)


class DERExpandParams(ExemplarParams):
    """DER (Yan et al.): a new feature extractor per context, the old ones frozen, one classifier over all of them
    and an auxiliary classifier on the newest."""

    name: Literal["der-expand"] = "der-expand"
    summary: ClassVar[str] = "dynamically expandable representation (a frozen extractor per context, exemplars)"
    aux_weight: float = Field(1.0, ge=0, description="Weight λ_a of the auxiliary loss: the newest extractor "
                              "alone tells the new classes apart and from the old ones (one class).")


class FOSTERParams(ExemplarParams):
    """FOSTER: each context from the second trains a new extractor beside the frozen one (boosting), then distils
    the pair back into one extractor (compression)."""

    name: Literal["foster"] = "foster"
    summary: ClassVar[str] = "feature boosting, then compression back to one extractor (exemplars)"
    beta1: float = Field(0.96, ge=0, lt=1, description="β of the class weights (effective numbers) that divide the "
                         "boosting logits.")
    beta2: float = Field(0.97, ge=0, lt=1, description="β of the class weights of the compression's balanced "
                         "distillation.")
    lambda_okd: float = Field(1.0, ge=0, description="Weight of the distillation of the old head's logits while "
                              "boosting.")
    temperature: float = Field(2.0, gt=0, description="Distillation temperature T (boosting and compression).")
    compression_iterations: int | None = Field(
        None, ge=1, le=MAX_ITERATIONS, description="Steps of the compression after each context from the second "
        "(none: 130/170 of train.iterations, PyCIL's epochs); the run's optimiser, rate annealed by a cosine.")


class XDERParams(ExemplarParams):
    """X-DER: DER++ whose stored logits are kept up to date for the heads learnt after them, with a supervised
    contrastive consistency on the future heads and hinge constraints between the heads."""

    name: Literal["xder"] = "xder"
    summary: ClassVar[str] = "eXtended DER: stored logits updated for later heads, head constraints (exemplars)"
    selection: Literal["herding", "random"] = Field("random", description="How exemplars are chosen (the paper: "
                                                    "random samples of the context).")
    alpha: float = Field(0.3, ge=0, description="Weight α of the stored logits' MSE over every head.")
    beta: float = Field(0.8, ge=0, description="Weight β of the stored labels' cross-entropy over the old heads.")
    gamma: float = Field(0.85, gt=0, le=1, description="A stored sample's logits of a later head are scaled to at "
                         "most γ times its true class's logit when they are written.")
    lambd: float = Field(0.1, ge=0, description="Weight λ of the supervised contrastive consistency on the heads of "
                         "the contexts still to come.")
    eta: float = Field(0.1, ge=0, description="Weight η of the two hinge constraints (past heads below the current "
                       "one, future heads below a sample's own).")
    margin: float = Field(0.3, ge=0, description="Margin m of the hinge constraints.")
    views: int = Field(2, ge=2, le=16, description="Augmented views per sample in the consistency loss.")
    consistency_batch: int = Field(64, ge=1, le=MAX_BATCH, description="Incoming samples (and as many stored) in "
                                   "the consistency loss.")
    consistency_temperature: float = Field(5.0, gt=0, description="Temperature of the supervised contrastive loss.")

    def resolve(self, config: RunConfig) -> None:
        if (config.benchmark.classes_per_context or 0) < 2:  # resolved from the data set by now
            raise ValueError("benchmark.classes_per_context: xder's loss on the incoming batch runs over the present "
                             "context's classes only, and with one class it is always 0; use contexts of 2 classes "
                             "or more (split-digits, split-fashion-mnist, cifar100-b50-10)")
        super().resolve(config)


class GDumbParams(MethodParams):
    """GDumb: a class-balanced greedy memory; before each evaluation the network is trained from scratch on it."""

    name: Literal["gdumb"] = "gdumb"
    summary: ClassVar[str] = "greedy balanced memory, retrained from scratch (stored data)"
    uneven_contexts: ClassVar[bool] = True
    scenarios: ClassVar[tuple[str, ...]] = ("task", "class")  # task-IL: trained over all classes, masked at test
    memory_total: int | None = Field(None, ge=1, le=MAX_STORED_SAMPLES,
                                     description="Samples in memory, all classes together (k in the paper).")
    epochs: int | None = Field(None, ge=1, le=MAX_ITERATIONS, description="Passes over the memory at each retraining "
                               "(none: 256 on CIFAR, 128 otherwise, the paper's).")
    batch_size: int = Field(16, ge=1, le=MAX_BATCH, description="Samples per step of the retraining.")
    lr: float = Field(0.05, gt=0, le=MAX_LR, description="Highest learning rate (SGD, momentum 0.9).")
    lr_min: float = Field(0.0005, ge=0, le=MAX_LR, description="Lowest learning rate of the cosine warm restarts.")
    weight_decay: float = Field(1e-6, ge=0, le=1.0, description="Weight decay of the retraining.")
    clip: float = Field(10.0, gt=0, description="Gradient norm clipped to this.")
    cutmix: float | None = Field(None, ge=0, le=1, description="Chance of a CutMix batch (alpha 1); none: 0.5 on "
                                 "CIFAR, 0 otherwise, as the paper.")

    def resolve(self, config: RunConfig) -> None:
        if self.memory_total is None:
            raise ValueError("method.memory_total: no default for gdumb in this preset; pass "
                             "--set method.memory_total=N (samples in memory, all classes together)")
        cifar = config.benchmark.name.startswith("cifar")
        if self.epochs is None:
            self.epochs = 256 if cifar else 128
        if self.cutmix is None:
            self.cutmix = 0.5 if cifar else 0.0
        if self.lr_min > self.lr:
            raise ValueError(f"method.lr_min: {self.lr_min} is above method.lr = {self.lr}; give at most lr")


class DGRParams(MethodParams):
    """Deep generative replay: a generator (a VAE, or a class-conditional WGAN-GP) trained alongside replays
    samples labelled by the previous classifier."""

    name: Literal["dgr"] = "dgr"
    summary: ClassVar[str] = "deep generative replay (generated data)"
    generator: Literal["vae", "gan"] = Field("vae", description="vae (van de Ven's DGR) or gan (Shin et al.'s "
                                             "original: here a class-conditional WGAN-GP, MeRGAN's, class-IL only).")
    z_dim: int = Field(100, ge=1, le=MAX_WIDTH, description="Latent (VAE) or noise (GAN) size of the generator.")
    generator_hidden: list[int] | None = Field(None, max_length=MAX_LAYERS,
                                               description="VAE hidden widths (none: the model's MLP shape); for "
                                               "the GAN, its first width is the networks' width (none: 256, or 64 "
                                               "channels for 28x28 and up).")
    generator_lr: float | None = Field(None, gt=0, le=MAX_LR, description="Generator learning rate (none: "
                                       "train.lr for the VAE, 1e-3 for the GAN).")
    n_critic: int = Field(3, ge=1, le=20, description="GAN only: critic steps per generator step, all on the "
                          "step's current and replayed batch.")
    distill: bool = Field(False, description="Replay soft targets of the previous model instead of its argmax.")
    temperature: float = Field(2.0, gt=0, description="Distillation temperature when distill is on.")

    _widths = field_validator("generator_hidden")(check_widths)

    def resolve(self, config: RunConfig) -> None:
        m = config.model
        if self.generator == "gan":
            if config.scenario != "class":
                raise ValueError("method.generator: gan replays class-conditional samples of the classes seen "
                                 "so far, a class-IL notion; use method.generator=vae for task- and domain-IL")
            return
        hidden = self.generator_hidden or (m.hidden if m.kind == "mlp" else [400, 400])  # as core/methods/dgr.py
        check_size("method.generator_hidden", f"a VAE generator with widths {show(hidden)} and z_dim {self.z_dim}",
                    vae_parameters(math.prod(config.benchmark.input_shape), hidden, self.z_dim))


class BIRParams(MethodParams):
    """Brain-inspired replay: replay through feedback, class-conditional prior, gated decoder, distillation."""

    name: Literal["bir"] = "bir"
    summary: ClassVar[str] = "brain-inspired replay (generated data)"
    z_dim: int = Field(100, ge=1, le=MAX_WIDTH, description="Latent size.")
    gating: float = Field(0.8, ge=0, lt=1, description="Fraction of decoder units gated off per context.")
    temperature: float = Field(2.0, gt=0, description="Distillation temperature.")
    recon_weight: float = Field(1.0, ge=0, description="Weight of the generative (VAE) loss.")

    def resolve(self, config: RunConfig) -> None:
        m = config.model
        # The decoder mirrors the classifier's fc hidden layers (core/methods/bir.py); its prior has a mode per class.
        fc = {"mlp": m.hidden, "vdv-conv": m.fc_hidden or [2000, 2000], "lenet5": [120, 84]}
        hidden = fc.get(m.kind) or [400, 400]
        check_size("method.z_dim", f"a decoder with widths {show(hidden[::-1])} and z_dim {self.z_dim}",
                    vae_parameters(math.prod(config.benchmark.input_shape), hidden, self.z_dim)
                    + 2 * config.head_size * self.z_dim)


class GenClassifierParams(MethodParams):
    """Generative classifier: one small VAE per class; predict the class with the highest likelihood."""

    name: Literal["gen-classifier"] = "gen-classifier"
    summary: ClassVar[str] = "generative classifier (one VAE per class)"
    scenarios: ClassVar[tuple[str, ...]] = ("task", "class")
    hidden: int = Field(85, ge=1, le=MAX_WIDTH, description="Hidden units of each class's VAE.")
    z_dim: int | None = Field(None, ge=1, le=MAX_WIDTH, description="Latent size of each class's VAE (none: 20 "
                              "for CIFAR, 5 for the others, the paper's values).")
    importance_samples: int = Field(100, ge=1, le=MAX_SAMPLES,
                                    description="Samples of the importance-sampled likelihood at test.")
    likelihood: Literal["bernoulli", "gaussian"] | None = Field(
        None, description="p(x|z): bernoulli (pixels in [0, 1]) or gaussian with unit variance (none: gaussian "
        "for the standardised CIFAR inputs, bernoulli for the others).")

    def resolve(self, config: RunConfig) -> None:
        cifar = config.benchmark.name.startswith("cifar")
        if self.z_dim is None:
            self.z_dim = 20 if cifar else 5
        if self.likelihood is None:
            self.likelihood = "gaussian" if cifar else "bernoulli"
        if self.likelihood == "bernoulli" and cifar:
            raise ValueError(f"method.likelihood: bernoulli needs pixels in [0, 1], but {config.benchmark.name} "
                             f"inputs are standardised; use --set method.likelihood=gaussian")
        # One VAE per class: encoder in -> h -> h -> 2z, decoder z -> h -> h -> in (core/methods/gen_classifier.py).
        h, z = self.hidden, self.z_dim
        per_class = dense_parameters([math.prod(config.benchmark.input_shape), h, h, 2 * z]) \
            + dense_parameters([z, h, h, math.prod(config.benchmark.input_shape)])
        check_size("method.hidden", f"a VAE per class ({config.head_size}) with {h} hidden units and z_dim {z}",
                    config.head_size * per_class)


BN_MODELS = ("vdv-conv", "resnet20", "resnet32", "resnet56", "resnet18-reduced")


class DreamingParams(MethodParams):
    """Shared by the data-free methods that invert the frozen model into images of old classes."""

    scenarios: ClassVar[tuple[str, ...]] = ("class",)
    dreams_per_class: int = Field(20, ge=1, le=MAX_DREAMS_PER_CLASS,
                                  description="Dreamed images per old class (replayed, and scored).")
    export_per_class: int = Field(8, ge=0, le=MAX_DREAMS_PER_CLASS,
                                  description="Dreamed images per class saved as PNGs in the run folder.")
    bn_weight: float = Field(10.0, ge=0, description="Weight of the BatchNorm statistics loss.")
    first_bn_weight: float = Field(10.0, ge=0, description="Extra factor on the first BatchNorm layer's term.")
    temperature: float = Field(2.0, gt=0, description="Distillation temperature on the dreamed images.")
    verifier_iterations: int = Field(500, ge=0, le=MAX_ITERATIONS, description="Steps to train the verifier that "
                                     "scores the dreams (0: no verifier figures).")

    def resolve(self, config: RunConfig) -> None:
        m = config.model
        if not (m.batch_norm or m.kind in BN_MODELS):
            raise ValueError(
                f"model.batch_norm: {self.name} dreams by matching the model's BatchNorm statistics, and this "
                f"{m.kind} has none; use --set model.batch_norm=true, a ResNet, or a *-dfcil preset")


class DeepInversionParams(DreamingParams):
    """DeepInversion: optimise images from noise against the frozen model; replay them with distillation."""

    name: Literal["deepinversion"] = "deepinversion"
    summary: ClassVar[str] = "DeepInversion (data-free: dreamed pixels)"
    steps: int = Field(2000, ge=1, le=MAX_ITERATIONS, description="Adam steps on the pixels of each batch of dreams.")
    lr: float = Field(0.05, gt=0, le=MAX_LR, description="Learning rate of the pixel optimisation.")
    batch_size: int = Field(256, ge=1, le=MAX_BATCH,
                            description="Dreams optimised together (their batch statistics are matched).")
    tv_weight: float = Field(2.5e-5, ge=0, description="Weight of the total-variation prior.")
    l2_weight: float = Field(3e-8, ge=0, description="Weight of the l2 prior on pixels.")
    jitter: int = Field(2, ge=0, le=MAX_IMAGE_SIDE, description="Random shift of the dreams in pixels at each step.")
    flip: bool = Field(True, description="Random horizontal flips at each step.")


class ABDParams(DreamingParams):
    """Always Be Dreaming: a generator inverts the frozen model; local CE, head fine-tuning and
    importance-weighted feature distillation train the new model."""

    name: Literal["abd"] = "abd"
    summary: ClassVar[str] = "Always Be Dreaming (data-free: a generator)"
    generator_iterations: int = Field(10000, ge=1, le=MAX_ITERATIONS,
                                      description="Generator steps after each context.")
    generator_lr: float = Field(1e-3, gt=0, le=MAX_LR, description="Generator learning rate (Adam; state kept across "
                                "contexts).")
    z_dim: int = Field(1000, ge=1, le=MAX_WIDTH, description="Generator noise size.")
    generator_width: int | None = Field(None, ge=1, le=MAX_WIDTH, description="Channels of the generator (none: "
                                        "128 for images of 16 px and more, 32 below).")
    content_temperature: float = Field(1000.0, gt=0, description="Temperature of the content cross-entropy.")
    diversity_weight: float = Field(1.0, ge=0, description="Weight of the information-entropy (diversity) term.")
    smoothness_weight: float = Field(1e-3, ge=0, description="Weight of the smoothness prior.")
    mu: float = Field(0.1, ge=0, description="Weight of the importance-weighted feature distillation.")
    bn_weight: float = Field(50.0, ge=0, description="Weight of the BatchNorm statistics loss (a KL per layer).")
    first_bn_weight: float = Field(1.0, ge=0, description="Extra factor on the first BatchNorm layer's term.")

    def resolve(self, config: RunConfig) -> None:
        super().resolve(config)
        _, h, w = config.benchmark.input_shape
        if h % 4 or w % 4:
            raise ValueError(f"benchmark.pad_to: abd's generator upsamples 4x, so images need sides divisible "
                             f"by 4; {config.benchmark.name} gives {h}x{w}")
        # core/methods/parts/dreaming.py's Generator: linear z -> (width, h/4, w/4),
        # 3x3 convs width -> width -> width/2 -> c.
        width = self.generator_width or (128 if min(h, w) >= 16 else 32)
        half, c = max(width // 2, 1), config.benchmark.input_shape[0]
        parameters = (self.z_dim + 1) * width * (h // 4) * (w // 4) + 9 * (width * width + width * half + half * c)
        field = "method.generator_width" if self.generator_width is not None else "method.z_dim"
        check_size(field, f"a generator with z_dim {self.z_dim} and width {width} on {h}x{w} images", parameters)



class FROMPParams(MethodParams):
    """FROMP: a kernel-weighted penalty on how the softmax outputs at a few memorable points per class move."""

    name: Literal["fromp"] = "fromp"
    summary: ClassVar[str] = "functional regularisation of memorable past (function space)"
    tau: float = Field(1.0, ge=0, description="Regularisation strength (van de Ven's 1 outside split MNIST; presets "
                       "give his tuned value per scenario).")
    budget: int | None = Field(None, ge=1, le=MAX_STORED_SAMPLES, description="Memorable points per class.")
    prior_prec: float = Field(1e-3, gt=0, description="Prior precision delta: the covariance is 1 / (Fisher + delta).")
    grad_clip_norm: float | None = Field(1.0, gt=0, description="Clip each step's gradient to this norm (none: off).")
    jitter: float = Field(1e-6, ge=0, description="Added to the kernel's diagonal before it is inverted.")

    def resolve(self, config: RunConfig) -> None:
        if self.budget is None:
            raise ValueError("method.budget: no default for fromp in this preset; pass --set method.budget=N "
                             "(memorable points per class)")
        stored = self.budget * config.benchmark.total_classes
        if stored > MAX_STORED_SAMPLES:
            raise ValueError(f"method.budget: {self.budget} per class x {config.benchmark.total_classes} classes = "
                             f"{stored} memorable points; at most {MAX_STORED_SAMPLES} in all")


# --- generation runs (Memory Replay GANs): the learner is a class-conditional GAN (core/training/generation.py) ---


class GANParams(MethodParams):
    """Shared by the generation methods: a class-conditional WGAN-GP whose critic also classifies (AC-GAN), trained
    one context after another; acc_matrix holds the verifier's accuracy on its samples
    (docs/architecture.md, run kinds)."""

    scenarios: ClassVar[tuple[str, ...]] = ("class",)
    z_dim: int = Field(32, ge=1, le=MAX_WIDTH, description="Noise size of the generator.")
    width: int | None = Field(None, ge=1, le=MAX_WIDTH, description="Hidden units of the MLP pair (8x8 images, "
                              "none: 256) or channels of the conv pair's first layer (28x28 and up, none: 64).")
    n_critic: int = Field(3, ge=1, le=20, description="Critic steps per generator step (WGAN-GP; the paper's 5 "
                          "costs 5/3 the time for no visible gain on digits).")
    gp_weight: float = Field(10.0, ge=0, description="Gradient-penalty weight of the critic (WGAN-GP's lambda).")
    ac_weight: float = Field(1.0, ge=0, description="Weight of the auxiliary classification loss (AC-GAN), on the "
                             "critic (real images) and on the generator (its samples).")
    samples_per_class: int = Field(200, ge=2, le=MAX_DREAMS_PER_CLASS * 50, description="Samples per class scored "
                                   "after each context (verifier accuracy, Fréchet distance).")
    export_per_class: int = Field(8, ge=0, le=MAX_DREAMS_PER_CLASS,
                                  description="Samples per class saved as PNGs and in the grid.")
    verifier_iterations: int = Field(500, ge=1, le=MAX_ITERATIONS, description="Steps to train the verifier (an "
                                     "independent classifier on all real training data) that scores the samples.")
    reverse_iterations: int = Field(300, ge=0, le=MAX_ITERATIONS, description="Steps to train the reverse "
                                    "classifier on generated samples only, tested on real test data (0: off).")

    def resolve(self, config: RunConfig) -> None:
        b, t = config.benchmark, config.train
        if b.protocol != "split" or b.name not in ("digits", "mnist", "fashion-mnist"):
            raise ValueError(f"benchmark.name: {self.name} draws greyscale digits or clothes in [0, 1] of split "
                             "contexts; use digits, mnist or fashion-mnist with protocol split "
                             "(e.g. split-digits-gen)")
        if t.eval_every:
            raise ValueError(f"train.eval_every: {self.name} is a generation run, scored by its verifier after each "
                             f"context only; set train.eval_every=0")
        if b.validation:
            raise ValueError(f"benchmark.validation: {self.name} is scored by its verifier, not on held-out data; "
                             f"set benchmark.validation=0")
        _, h, w = b.input_shape
        if min(h, w) >= 16 and (h % 4 or w % 4):
            raise ValueError(f"benchmark.pad_to: the conv generator doubles 1/4 of the image twice; {h}x{w} is not "
                             f"divisible by 4")


class GANFinetuneParams(GANParams):
    """Sequential fine-tuning (SFT) of a conditional GAN: each context's data only (the lower bound)."""

    name: Literal["gan-finetune"] = "gan-finetune"
    summary: ClassVar[str] = "generation: conditional GAN fine-tuned (SFT)"


class GANEWCParams(GANParams):
    """EWC on the generator's parameters (Seff et al. 2017): lambda/2 * sum_i F_i (theta_i - theta*_i)^2."""

    name: Literal["gan-ewc"] = "gan-ewc"
    summary: ClassVar[str] = "generation: EWC on the generator (Seff et al.)"
    lambda_: float = Field(100.0, alias="lambda", ge=0, description="Penalty strength (on split digits 1e3 keeps "
                           "more of the old classes and learns the new ones far less).")
    fisher_n: int = Field(256, ge=1, le=MAX_SAMPLES, description="Generated samples for the generator's Fisher.")


class MeRGANJTRParams(GANParams):
    """MeRGAN joint training with replay: the previous generator draws the old classes, trained on with the new data."""

    name: Literal["mergan-jtr"] = "mergan-jtr"
    summary: ClassVar[str] = "generation: Memory Replay GAN, joint training with replay"


class MeRGANRAParams(GANParams):
    """MeRGAN replay alignment: lambda_RA * E ||G_t(z, c) - G_{t-1}(z, c)||^2 over old classes, same z and c."""

    name: Literal["mergan-ra"] = "mergan-ra"
    summary: ClassVar[str] = "generation: Memory Replay GAN, replay alignment"
    lambda_ra: float = Field(1.0, ge=0, description="Weight of the alignment with the previous generator (per "
                             "sample, summed over pixels in [0, 1]; see core/methods/mergan_ra.py).")
