"""What the run schema and the method parameters share: the limits a config may ask for, the size
arithmetic that enforces them without torch, the `Section` base of every config table, and `ConfigError`.

Torch-free, like everything config: the CLI and the TUI validate configs without paying for torch.
"""

from __future__ import annotations

import math
import reprlib
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

Scenario = Literal["task", "domain", "class"]
SCENARIOS: tuple[str, ...] = ("task", "domain", "class")


class ConfigError(ValueError):
    """A user-facing configuration problem, phrased as one line that names the field and the fix.
    `field` is the dotted key it is about (e.g. "method.lambda"), or "" when no single key is at fault, and
    `detail` the message without that key: a form places it beside its field without reading the text."""

    def __init__(self, message: object = "", field: str = "", detail: str | None = None) -> None:
        # One line even when a value quoted in it holds a line break (a file name, a --set item).
        super().__init__(" ".join(str(message).splitlines()))
        self.field = field
        # The message without the field's name in front: what a form shows beside that field.
        self.detail = self.args[0] if detail is None else " ".join(detail.splitlines())


# --- Limits ----------------------------------------------------------------------------------------
# Far beyond any experiment this workbench runs, yet tight enough that a typo (1e12 for 1e2, an extra
# 000) is refused here in one line instead of asking the worker for terabytes or for years.

SEED_LIMIT = 2**63  # seeds are 0 <= seed < 2**63: torch takes 64 bits, and methods add offsets (< 2**31) to the seed
MAX_LR = 10.0  # the presets use 1e-4 .. 0.1; Adam is used at <= 1e-2 and SGD at <= 1; above 10 only diverges
MAX_WEIGHT_DECAY = 1.0  # typical values are 1e-5 .. 5e-4
MAX_ITERATIONS = 10_000_000  # steps per context or phase: 1,000x the presets'; the worker keeps a float per step
MAX_BATCH = 1_000_000  # samples per step / evaluation batch: more than any training set here (60,000)
MAX_WIDTH = 65_536  # units (or channels, or latent size) of one layer: 2**16, ~30x the widest published nets here
MAX_LAYERS = 100  # entries of a width list (hidden layers)
# Parameters of one network (or a method's set of networks): 5e8 x 16 bytes (weights, gradients and Adam's
# two moments) = 8 GB; the presets' networks have 2e5 .. 7e6.
MAX_PARAMETERS = 500_000_000
BYTES_PER_PARAMETER = 16  # float32 weights + gradients + Adam's two moments
MAX_STORED_SAMPLES = 1_000_000  # replay buffer, all classes together: 12 GB as float32 CIFAR images
# Samples of an estimate (the Fisher; importance samples per test image, 10,000 in the generative
# classifier's paper): both are computed in chunks, so this bounds time, not memory.
MAX_SAMPLES = 1_000_000
MAX_DREAMS_PER_CLASS = 10_000  # dreamed (and exported) images per class: ABD generates all classes' dreams at once
MAX_IMAGE_SIDE = 1024  # pixels: padding size, jitter
MAX_PROGRESS_INTERVAL = 3600.0  # seconds between progress events: an hour


def sci(x: float) -> str:
    """6.4e9, 5e8: short scientific notation for the size messages."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def dense_parameters(widths: list[int]) -> int:
    """Weights and biases of fully connected layers widths[0] -> widths[1] -> ... -> widths[-1]."""
    return sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))


def vae_parameters(in_dim: int, hidden: list[int], z_dim: int) -> int:
    """A fully connected VAE: encoder in -> hidden, mean and log-variance heads, decoder z -> hidden reversed -> in."""
    h = hidden[-1] if hidden else in_dim
    encoder = dense_parameters([in_dim, *hidden]) + 2 * (h + 1) * z_dim
    return encoder + dense_parameters([z_dim, *hidden[::-1], in_dim])


def check_size(field: str, what: str, parameters: int) -> None:
    """Refuse a network too large for any device, in one line naming the field and the limit."""
    if parameters > MAX_PARAMETERS:
        gb = parameters * BYTES_PER_PARAMETER / 1e9
        raise ValueError(f"{field}: {what} gives about {sci(parameters)} parameters (~{gb:,.0f} GB with Adam's "
                         f"state); at most {sci(MAX_PARAMETERS)}: use smaller widths")


def check_widths(v: list[int] | None) -> list[int] | None:
    if v is not None and any(not 1 <= w <= MAX_WIDTH for w in v):
        raise ValueError(f"every layer width must be >= 1 and <= {MAX_WIDTH}, got {show(v)}")
    return v


def check_seed(v: int | None) -> int | None:
    if v is not None and not 0 <= v < SEED_LIMIT:
        raise ValueError(f"a seed must be >= 0 and below 2**63 = {SEED_LIMIT} (torch seeds are 64-bit), got {v}")
    return v



BENCHMARK_INFO: dict[str, dict[str, Any]] = {
    "digits": {"classes": 10, "shape": (1, 8, 8)},
    "mnist": {"classes": 10, "shape": (1, 28, 28)},
    "fashion-mnist": {"classes": 10, "shape": (1, 28, 28)},
    "cifar10": {"classes": 10, "shape": (3, 32, 32)},
    "cifar100": {"classes": 100, "shape": (3, 32, 32)},
    # five noisy sine waves, one per "class": a regression toy (core/engine/data.py `sine_contexts`), offline
    "sine": {"classes": 5, "shape": (1, 1, 1), "regression": True},
}
REGRESSION_METHODS = ("none", "joint", "cumulative")  # the methods whose loss is only the scenario's criterion


def score_name(benchmark: Any) -> str:
    """What a run's accuracy matrix holds, for labels: "R²" on a regression benchmark, else "accuracy"."""
    info = BENCHMARK_INFO.get(benchmark) if isinstance(benchmark, str) else None
    return "R²" if info and info.get("regression") else "accuracy"


def takes_numbers(annotation: Any) -> bool:
    """Whether a field's type holds ints or floats (`int | None`, `list[float]`, ...) and not booleans."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    args = typing.get_args(annotation)
    return bool(args) and bool not in args and any(takes_numbers(a) for a in args)


class Section(BaseModel):
    # allow_inf_nan=False: no float anywhere (method parameters included) may be inf or nan.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """true / false are never numbers (pydantic's lax mode reads them as 1 / 0), in --set or a preset."""
        values = v if isinstance(v, list) else [v]
        if any(isinstance(x, bool) for x in values):
            field = cls.model_fields.get(info.field_name or "")
            if field is not None and takes_numbers(field.annotation):
                raise ValueError(f"give a number, not true or false (got {show(v)})")
        return v



MODEL_KINDS = ("mlp", "lenet5", "vdv-conv", "resnet20", "resnet32", "resnet56", "resnet18-reduced")
# VdVConvNet's conv stack (core/engine/models.py): 3x3 convs, all but the first stride 2
VDV_CHANNELS = (16, 32, 64, 128, 256)


def model_parameters(kind: str, input_shape: tuple[int, int, int], head: int, hidden: list[int],
                     fc_hidden: list[int] | None) -> int | None:
    """About how many parameters core.engine.models.build_model gives, without torch; None for the networks whose
    size no setting can blow up (lenet5's fc layers and the ResNets are fixed)."""
    c, h, w = input_shape
    if kind == "mlp":
        return dense_parameters([c * h * w, *hidden, head])
    if kind == "vdv-conv":
        conv = sum(9 * a * b + 2 * b for a, b in zip((c, *VDV_CHANNELS), VDV_CHANNELS, strict=False))
        flat = VDV_CHANNELS[-1] * math.ceil(h / 16) * math.ceil(w / 16)  # four stride-2 convs
        return conv + dense_parameters([flat, *(fc_hidden or [2000, 2000]), head])
    return None


SHORT = reprlib.Repr()
SHORT.maxstring = SHORT.maxother = 80
SHORT.maxlevel = 3


def show(value: Any) -> str:
    """A value as the user would recognise it, cut short (a --set value may be huge or nested deep)."""
    try:
        return SHORT.repr(value)
    except Exception:  # noqa: BLE001 - a message must never fail: RecursionError, a broken __repr__
        return f"a {type(value).__name__}"

