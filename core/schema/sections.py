"""The sections of a run's config other than the method: the benchmark, the model, training and tracking, each
a validated pydantic model with its limits (core/schema/config.py puts them together with the method's
parameters into a RunConfig). Imports neither torch nor any UI library."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.schema.imagescan import DEFAULT_TEST_SHARE, LAYOUT_FIX, FolderError, resolve_folder
from core.schema.limits import (
    BENCHMARK_INFO,
    MAX_BATCH,
    MAX_IMAGE_SIDE,
    MAX_ITERATIONS,
    MAX_LAYERS,
    MAX_LR,
    MAX_PROGRESS_INTERVAL,
    MAX_WEIGHT_DECAY,
    Section,
    check_seed,
    check_widths,
)


class BenchmarkConfig(Section):
    name: Literal["digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "sine", "folder"] = Field(
        "digits", description="Data set: digits is scikit-learn's embedded 8x8 set (offline); sine is a regression "
        "toy of five noisy sine waves, one per context (offline; scored by R^2 where others report accuracy); "
        "folder: your own images in --data-dir, one subfolder per class (see `cltui data check DIR`)."
    )
    protocol: Literal["split", "permuted", "rotated"] = Field(
        "split",
        description="split: disjoint classes per context; permuted / rotated: all classes, new input transform.",
    )
    contexts: int = Field(5, ge=1, le=1000, description="Number of contexts (tasks) learned one after another.")
    classes_per_context: int | None = Field(
        None, ge=1, description="split: classes in each context (default: all classes / contexts)."
    )
    first_context_classes: int | None = Field(
        None, ge=1, description="split: classes of the first context, the others keeping classes_per_context "
        "(the class-IL papers' B50-10 on CIFAR-100: 50 first, then 10 per context, contexts = 6); contexts counts "
        "the first one too. none: the first context is like the others."
    )
    class_order_seed: int | None = Field(
        None, ge=0, description="split: permute the class order with this seed (none: natural order 0, 1, 2, ...); "
        "permuted: seed of the pixel permutations (none: 0). The class-IL papers shuffle with 1993 (with "
        "class_order_shuffle = numpy)."
    )
    class_order_shuffle: Literal["torch", "numpy"] = Field(
        "torch", description="split: the generator that shuffles the classes with class_order_seed: torch "
        "(torch.randperm) or numpy (numpy.random.seed(seed) then permutation, as PyCIL and the class-IL papers do: "
        "with seed 1993 it gives their CIFAR-100 order)."
    )
    pad_to: int | None = Field(None, ge=1, le=MAX_IMAGE_SIDE,
                               description="Zero-pad images to this size (permuted MNIST uses 32).")
    rotation_max: float = Field(180.0, description="rotated: contexts use angles evenly spaced in [0, rotation_max).")
    augment: bool = Field(False, description="Padded random crop (4 px) and horizontal flip, batched on the device.")
    stream: Literal["academic", "fuzzy", "fuzzy-linear", "random"] = Field(
        "academic", description="academic: one context after another, sharp boundaries; fuzzy: van de Ven's "
        "circular stream: each context blends into the next over `fuzziness` iterations around boundaries half a "
        "context in, the last back into context 0, so the stream starts and ends on context 0; fuzzy-linear: the "
        "same blend around the academic boundaries, ending on the last context; random: each batch from a random "
        "context (task-free: the method is told no boundary; rows of the matrix are context-sized blocks).")
    fuzziness: int = Field(100, ge=1, le=MAX_ITERATIONS, description="fuzzy: iterations over which the chance of "
                           "drawing from the next context rises linearly from 0 to 1, centred on the boundary "
                           "(twice the fuzziness of van de Ven's code, which counts one side).")
    data_dir: str | None = Field(None, description="Folder holding the data set files (default: ./data); for "
                                 "folder, the folder of images.")
    download: bool = Field(False, description="Download the data set when its files are missing.")
    validation: float = Field(0.0, ge=0, le=0.5, description="Share of each context's training data held out "
                              "(class-stratified, the same samples for every seed) and never trained on; runs "
                              "report its accuracy beside the test accuracy (`cltui sweep` tunes on it). 0: off.")
    learn_contexts: list[int] | None = Field(
        None, max_length=1000, description="Contexts whose training data the run sees (none: all); the others are "
        "still tested. For teachers of `cltui merge` that know only some contexts; method joint only.")

    # folder: resolved from the folder once, when the config is made, then recorded like classes_per_context, so
    # a run's config stays valid without its folder. None for the named data sets.
    classes: int | None = Field(None, ge=2, description="folder: its number of classes (default: its class "
                                "folders, counted).")
    image_size: int | None = Field(None, ge=1, le=MAX_IMAGE_SIDE, description="folder: side of the square the "
                                   "images are resized to (shorter side, then the centre; default: the shorter side "
                                   "of the most common image size).")
    channels: int | None = Field(None, ge=1, le=3, description="folder: 1 (grayscale) or 3 (RGB) (default: what the "
                                 "images are; set it to convert a folder of mixed modes).")
    test_share: float = Field(DEFAULT_TEST_SHARE, gt=0, le=0.5, description="folder without a test folder: share of "
                              "each class held out as the test set (stratified, the same images for every run).")

    _seed = field_validator("class_order_seed")(check_seed)

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: int | None) -> int | None:
        if v not in (None, 1, 3):
            raise ValueError(f"give 1 (grayscale) or 3 (RGB), got {v}")
        return v

    @field_validator("learn_contexts")
    @classmethod
    def _learn(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or len(set(v)) != len(v) or any(k < 0 for k in v)):
            raise ValueError("give distinct context indices, e.g. [0, 1]")
        return None if v is None else sorted(v)

    @property
    def num_classes(self) -> int:
        if self.name == "folder":
            assert self.classes is not None  # resolved from the folder by validation
            return self.classes
        return BENCHMARK_INFO[self.name]["classes"]

    @property
    def regression(self) -> bool:
        """A regression benchmark (sine): targets are numbers, the loss is MSE, the score R^2."""
        return bool(BENCHMARK_INFO.get(self.name, {}).get("regression"))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        if self.name == "folder":
            assert self.channels is not None and self.image_size is not None  # resolved by validation
            c, h, w = self.channels, self.image_size, self.image_size
        else:
            c, h, w = BENCHMARK_INFO[self.name]["shape"]
        if self.pad_to:
            h, w = max(h, self.pad_to), max(w, self.pad_to)
        return (c, h, w)

    @property
    def total_classes(self) -> int:
        """Classes over all contexts: with permuted / rotated each context brings its own copy of every class."""
        assert self.classes_per_context is not None
        if self.protocol == "split":
            return self.first_classes + (self.contexts - 1) * self.classes_per_context
        return self.contexts * self.num_classes

    @property
    def first_classes(self) -> int:
        """Classes of the first context: first_context_classes, else classes_per_context."""
        assert self.classes_per_context is not None
        return self.first_context_classes or self.classes_per_context

    def _resolve_folder(self) -> None:
        """folder: fill classes, image_size and channels from the folder (and refuse a bad folder in one line);
        the named data sets take none of them."""
        if self.name != "folder":
            given = next((k for k in ("classes", "image_size", "channels") if getattr(self, k) is not None), None)
            if given:
                raise ValueError(f"{given}: only benchmark.name=folder takes it, not {self.name}; leave it unset")
            if self.test_share != DEFAULT_TEST_SHARE:
                raise ValueError(f"test_share: {self.name} has its own test set (only benchmark.name=folder holds "
                                 f"one out); leave it unset")
            return
        if None not in (self.classes, self.image_size, self.channels):
            return  # resolved before (a run's config): the folder need not be there
        if not self.data_dir:
            raise ValueError(f"data_dir: benchmark.name folder reads your own images; pass {LAYOUT_FIX}")
        try:
            self.classes, self.image_size, self.channels = resolve_folder(
                Path(self.data_dir), self.classes, self.image_size, self.channels, self.test_share)
        except FolderError as e:
            raise ValueError(f"{e.field}: {e}") from None

    @model_validator(mode="after")
    def _resolve_classes(self) -> BenchmarkConfig:
        self._resolve_folder()
        n = self.num_classes
        source = self.data_dir if self.name == "folder" else self.name
        if self.first_context_classes is not None:
            self._check_first_context(n, source)
        elif self.protocol == "split":
            if self.classes_per_context is None:
                if n // self.contexts < 1:
                    raise ValueError(f"contexts: {source} has {n} classes, too few for {self.contexts} contexts")
                self.classes_per_context = n // self.contexts
            if self.contexts * self.classes_per_context > n:
                raise ValueError(
                    f"classes_per_context: {self.contexts} contexts x {self.classes_per_context} classes needs "
                    f"{self.contexts * self.classes_per_context} classes, {source} has {n}"
                    f"{'; cltui data check DIR suggests a split' if self.name == 'folder' else ''}"
                )
        else:
            if self.classes_per_context not in (None, n):
                raise ValueError(f"classes_per_context: a {self.protocol} context holds all {n} classes of "
                                 f"{self.name}; set benchmark.classes_per_context={n}")
            self.classes_per_context = n
        if self.class_order_shuffle != "torch" and self.protocol != "split":
            raise ValueError(f"class_order_shuffle: a {self.protocol} context keeps every class in order; only "
                             "benchmark.protocol=split shuffles the classes, leave it unset")
        if self.class_order_shuffle == "numpy" and (self.class_order_seed or 0) >= 2**32:
            raise ValueError(f"class_order_seed: numpy's shuffle takes seeds below 2**32, got {self.class_order_seed}; "
                             "give a smaller one")
        if self.learn_contexts is not None and max(self.learn_contexts) >= self.contexts:
            raise ValueError(f"learn_contexts: context {max(self.learn_contexts)} does not exist; there are "
                             f"{self.contexts} contexts, 0 to {self.contexts - 1}")
        return self

    def _check_first_context(self, n: int, source: str | None) -> None:
        """An uneven first context (B50-10): f classes first, then classes_per_context (default: what is left,
        shared by the other contexts) per context; refused in one line when the numbers do not add up."""
        f, rest = self.first_context_classes, self.contexts - 1
        assert f is not None
        if self.protocol != "split" or self.regression:
            what = f"a {self.protocol} context holds all {n} classes" if self.protocol != "split" else \
                f"{self.name}'s contexts are its waves, one each"
            raise ValueError(f"first_context_classes: {what}; only split classification cuts an uneven first "
                             f"context, leave it unset")
        if f > n or (f == n and rest):
            raise ValueError(f"first_context_classes: {f} classes in the first context leaves none for the "
                             f"{rest} other context(s); {source} has {n}, give fewer")
        if self.classes_per_context is None:
            if rest and (n - f) // rest < 1:
                raise ValueError(f"contexts: {n - f} classes of {source} remain after a first context of {f}, too "
                                 f"few for {rest} more contexts; set benchmark.contexts to at most {n - f + 1}")
            self.classes_per_context = (n - f) // rest if rest else f
        c = self.classes_per_context
        if f + rest * c > n:
            fits = 1 + (n - f) // c
            raise ValueError(f"first_context_classes: {f} + {rest} contexts x {c} classes needs {f + rest * c} "
                             f"classes, {source} has {n}; set benchmark.contexts to {fits}, or give fewer classes "
                             f"per context")


class ModelConfig(Section):
    kind: Literal["mlp", "lenet5", "vdv-conv", "resnet20", "resnet32", "resnet56", "resnet18-reduced"] = Field(
        "mlp", description="Network: mlp, lenet5, vdv-conv (van de Ven's 5-conv net), CIFAR ResNets."
    )
    hidden: list[int] = Field([400, 400], max_length=MAX_LAYERS, description="mlp: widths of the hidden layers.")
    batch_norm: bool = Field(False, description="mlp / fc layers: BatchNorm after each hidden layer.")
    fc_hidden: list[int] | None = Field(None, max_length=MAX_LAYERS,
                                        description="vdv-conv: widths of the fc layers (default 2000, 2000).")
    pretrained: str | None = Field(None, max_length=4096, description="Checkpoint of conv layers to start from "
                                   "(`cltui pretrain` makes one); its sha256 is recorded in the run.")
    freeze_conv: bool = Field(False, description="Keep the conv layers fixed (with model.pretrained: the paper's "
                              "--freeze-convE).")

    _widths = field_validator("hidden", "fc_hidden")(check_widths)

    @model_validator(mode="after")
    def _conv_only(self) -> ModelConfig:
        if (self.pretrained or self.freeze_conv) and self.kind not in ("vdv-conv", "lenet5"):
            key = "pretrained" if self.pretrained else "freeze_conv"
            raise ValueError(f"{key}: model.kind {self.kind} has no conv stack to load or freeze; use vdv-conv "
                             f"or lenet5")
        return self


class TrainConfig(Section):
    iterations: int = Field(500, ge=1, le=MAX_ITERATIONS, description="Optimiser steps per context.")
    batch_size: int = Field(128, ge=1, le=MAX_BATCH, description="Samples per step.")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="adam (betas 0.9, 0.999) or sgd.")
    lr: float = Field(1e-3, gt=0, le=MAX_LR, description="Learning rate.")
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd: momentum.")
    weight_decay: float = Field(0.0, ge=0, le=MAX_WEIGHT_DECAY, description="L2 weight decay.")
    reset_optimizer: bool = Field(False, description="Start every context with a fresh optimiser state "
                                  "(FOSTER always does).")
    lr_decay_at: list[float] = Field([], max_length=MAX_LAYERS, description="Fractions of each context's iterations "
                                     "at which the learning rate is multiplied by lr_decay (e.g. [0.4, 0.6, 0.8]).")
    lr_decay: float = Field(0.1, gt=0, le=1, description="Factor applied at each lr_decay_at point.")
    seed: int = Field(0, description="Seed of initialisation, sampling and augmentation (0 <= seed < 2**63).")
    device: str = Field("auto", description="auto (cuda if available), cpu, cuda or cuda:N.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast the forward pass (CUDA or CPU).")
    compile: bool = Field(False, description="torch.compile the model (CPU or CUDA; the first steps compile it, "
                          "about 15-20 s on a CPU: worth it for long runs of an MLP, not for LeNet-5 on a CPU).")
    active_classes: Literal["so-far", "all"] = Field(
        "so-far", description="class-IL: outputs a loss covers: so-far (classes seen so far) or all (every class "
        "from the start, future ones as negatives; van de Ven's --active-classes default).")
    eval_batch_size: int = Field(2048, ge=1, le=MAX_BATCH, description="Samples per evaluation batch.")
    eval_every: int = Field(0, ge=0, le=MAX_ITERATIONS, description="Continual evaluation: test every context "
                            "every N iterations, inside the context (0: off); run.json keeps the points as acc_curve.")
    eval_samples: int = Field(1024, ge=0, le=MAX_BATCH, description="Continual evaluation: a fixed random subset of "
                              "this many test samples per context, kept on the device (0: the whole test set).")
    checkpoints: Literal["last", "all", "none"] = Field(
        "last", description="Context checkpoints to keep: last (enough to resume), all, none."
    )
    progress_interval: float = Field(0.25, gt=0, le=MAX_PROGRESS_INTERVAL,
                                     description="Seconds between progress events.")

    _seed = field_validator("seed")(check_seed)

    @field_validator("lr_decay_at")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in v) or v != sorted(v):
            raise ValueError("give increasing fractions between 0 and 1, e.g. [0.4, 0.6, 0.8]")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError(f"{v!r} is not a device; use auto, cpu, cuda or cuda:N")
        return v


class TrackConfig(Section):
    """Where the worker also logs the run as it goes (core/reporting/live.py). Not part of what the run computes:
    `--resume` may change it, and it is left out of the parameters a tracker records."""

    tracker: Literal["none", "mlflow"] = Field("none", description="none (run.json only) or mlflow: params, "
                                               "metrics per context and artifacts, logged live by the worker.")
    uri: str | None = Field(None, max_length=2048, description="mlflow: tracking URI (default: the SQLite store "
                            "<runs-dir>/mlflow.db, artifacts in <runs-dir>/mlartifacts).")
    experiment: str | None = Field(None, min_length=1, max_length=500,
                                   description="mlflow: experiment name (default: the preset's name).")
    checkpoints: bool = Field(False, description="mlflow: also log the final checkpoint as an artifact.")
    parent: str | None = Field(None, max_length=200, description="mlflow: the run this one is nested under "
                               "(cltui compare sets it to the study's run).")
