"""How many CPU threads a run trains with, chosen from the cores this process may really use.

PyTorch's default is one OpenMP thread per core of the machine, each spinning at every barrier for a while
before it sleeps. Two such processes on the same cores (two runs, or a run beside anyone else's job) collapse
10-40x: a thread spins on the core that the thread it waits for needs. So a run gets

- the user's intra-op thread count when they set one (`--threads`, OMP_NUM_THREADS), else the cores of this
  process's CPU affinity (taskset, cgroup cpusets, Slurm: `os.sched_getaffinity`) shared among the runs cltui
  has in flight, at least one each;
- one inter-op thread: a run's ops run one after another;
- passive OpenMP waits (OMP_WAIT_POLICY=PASSIVE for GNU libgomp, which this torch build uses; KMP_BLOCKTIME=0
  for Intel's libiomp): a thread that reaches a barrier sleeps at once instead of spinning on a core another
  process needs. OpenMP reads these once, when torch loads it, so a worker sets them before it imports torch
  (`apply`); a user's own setting of either is kept.

A small step is the exception: with passive waits every parallel region pays a wake-up, and an MLP step of a
few hundred MFLOP (split-digits, split-MNIST) runs about twice as fast on one thread as on two
(benchmarks/threads.py), while the larger ones (the perm-MNIST MLP, the conv nets) gain from the cores. So
`for_step` gives a run whose MLP step is under SMALL_STEP_MFLOP one thread, unless the user chose a count.

`apply` sets the count in the training process and `in_use` reports it for run.json's env.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


@dataclass(frozen=True)
class ThreadChoice:
    threads: int  # intra-op threads (torch.set_num_threads)
    source: str  # why this many, as run.json records it: "--threads", "OMP_NUM_THREADS", "2 cores / 1 run"


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one, else every core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _env_threads(environ: Mapping[str, str]) -> int | None:
    """OMP_NUM_THREADS as a positive count (its first entry: "4,2" is a nested list), None if unset or bad."""
    value = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 1 else None


def choose(requested: int | None = None, runs: int = 1, environ: Mapping[str, str] | None = None,
           cores: int | None = None) -> ThreadChoice:
    """The intra-op thread count of one of `runs` runs in flight: `requested` (--threads) if given, else the
    user's OMP_NUM_THREADS in `environ` (default os.environ), else `cores` (default: this process's affinity)
    divided among the runs, at least one each."""
    if requested:
        return ThreadChoice(int(requested), "--threads")
    from_env = _env_threads(os.environ if environ is None else environ)
    if from_env is not None:
        return ThreadChoice(from_env, "OMP_NUM_THREADS")
    cores = usable_cores() if cores is None else max(1, cores)
    runs = max(1, runs)
    return ThreadChoice(max(1, cores // runs), f"{cores} core{'s' * (cores > 1)} / {runs} run{'s' * (runs > 1)}")


SMALL_STEP_MFLOP = 800  # benchmarks/threads.py, 2 cores: 1 thread wins at 367 MFLOP (1.8x), loses at 1,560 (0.8x)
USER_SOURCES = ("--threads", "OMP_NUM_THREADS")


def step_mflop(config: Mapping[str, Any]) -> float | None:
    """About how many MFLOP one training step of the run's MLP takes (forward and backward: 6 x weights x batch);
    None for the conv nets and for anything that does not validate (their ops are large enough to share)."""
    from core.schema.config import ConfigError, validate_config
    from core.schema.limits import model_parameters

    try:
        cfg = validate_config(dict(config))
    except ConfigError:
        return None
    if cfg.model.kind != "mlp":
        return None
    weights = model_parameters("mlp", cfg.benchmark.input_shape, cfg.head_size, cfg.model.hidden, None)
    return None if weights is None else 6 * weights * cfg.train.batch_size / 1e6


def for_step(choice: ThreadChoice, config: Mapping[str, Any]) -> ThreadChoice:
    """`choice`, or one thread for a run whose MLP step is too small to share among threads (passive waits make
    each parallel region wake the others); a count the user chose is kept."""
    if choice.threads <= 1 or choice.source in USER_SOURCES:
        return choice
    mflop = step_mflop(config)
    if mflop is None or mflop >= SMALL_STEP_MFLOP:
        return choice
    return ThreadChoice(1, f"1 thread: a {mflop:.0f} MFLOP step runs faster on one ({choice.source})")


def openmp_environment(choice: ThreadChoice, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables OpenMP must find when torch loads it: the chosen thread count and passive waits (a user's
    own wait settings kept)."""
    environ = os.environ if environ is None else environ
    extra = {k: v for k, v in WAIT_POLICY.items() if k not in environ}
    extra["OMP_NUM_THREADS"] = str(choice.threads)
    return extra


_applied: ThreadChoice | None = None


def apply(choice: ThreadChoice) -> None:
    """Train with `choice` in this process: its intra-op count, one inter-op thread, and (when torch is not loaded
    yet, as in a fresh worker) OpenMP's environment."""
    global _applied
    if "torch" not in sys.modules:
        os.environ.update(openmp_environment(choice))
    import torch

    torch.set_num_threads(choice.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # settable once, before any inter-op work: a reused process (Ray) has it already
        pass
    _applied = choice


def in_use() -> dict[str, str]:
    """The thread count this process trains with and why, for run.json's env; a process that has not chosen
    one yet (an in-process run) chooses it now, for one run."""
    import torch

    if _applied is None:
        apply(choose())
    assert _applied is not None
    return {"threads": str(torch.get_num_threads()), "threads_from": _applied.source}
