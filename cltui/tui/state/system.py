"""The live screen's system line: what the run's worker costs (CPU and resident memory, read from /proc on Linux),
the machine's memory, the GPU's use when the run is on CUDA (nvidia-smi), and the run's pace (iterations per
second, the time left) folded from its Progress events.

Standard library only: the TUI never imports torch, and psutil is not a dependency. Where /proc does not exist
(another OS) the worker's figures read "–"; without nvidia-smi the GPU part is left out. Reading /proc costs
microseconds, so the screen samples it on the UI thread; nvidia-smi is a process start, run in a thread worker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text

from cltui.tui.state.formats import fmt_duration
from core.runs.events import ContextStarted, Event, Progress, RunStarted

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
GPU_QUERY = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits"]
GPU_TIMEOUT = 2.0  # s: nvidia-smi on a busy or wedged driver can hang; the line simply goes without the GPU
CHILDREN_EVERY = 5.0  # s between looks for the worker's child processes (a scan of /proc where need be)


# --- the worker process and the machine, from /proc --------------------------------------------------------


@dataclass(frozen=True)
class ProcessSample:
    """One look at a process: CPU seconds used so far (user + system), resident bytes, start (epoch seconds)."""

    cpu_s: float
    rss: int
    started: float | None


def parse_stat(text: str) -> tuple[int, float, int]:
    """(parent pid, CPU seconds, start in clock ticks after boot) from the text of /proc/<pid>/stat. The command
    name (field 2) may hold spaces and parentheses: the fields are counted from the last ")"."""
    fields = text.rpartition(")")[2].split()  # fields[0] is field 3 of proc(5): the state
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, int(fields[19])


def boot_time(proc: Path = PROC) -> float | None:
    """When the machine booted (epoch seconds), from /proc/stat's btime; None elsewhere."""
    try:
        for line in (proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def read_process(pid: int, proc: Path = PROC) -> ProcessSample | None:
    """What /proc tells of `pid`; None where it does not (another OS, a process gone, no permission)."""
    try:
        _, cpu_s, start_ticks = parse_stat((proc / str(pid) / "stat").read_text())
        rss = int((proc / str(pid) / "statm").read_text().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None
    booted = boot_time(proc)
    return ProcessSample(cpu_s, rss, None if booted is None else booted + start_ticks / TICKS)


def process_start(pid: int, proc: Path = PROC) -> float | None:
    """When `pid` started (epoch seconds, to the second of the boot time), or None."""
    sample = read_process(pid, proc)
    return sample.started if sample is not None else None


def children(pid: int, proc: Path = PROC) -> list[int]:
    """The processes `pid` started, and theirs (a headless `cltui run` trains in a child; a worker may have
    data-loading children). /proc/<pid>/task/*/children where the kernel has it, else a scan of /proc."""
    found: list[int] = []
    todo = [pid]
    parents: dict[int, list[int]] | None = None
    while todo and len(found) < 256:
        current = todo.pop()
        try:
            kids = [int(k) for task in (proc / str(current) / "task").iterdir()
                    for k in (task / "children").read_text().split()]
        except FileNotFoundError:
            if parents is None:
                parents = parent_map(proc)
            kids = parents.get(current, [])
        except (OSError, ValueError):
            kids = []
        found += kids
        todo += kids
    return found


def parent_map(proc: Path = PROC) -> dict[int, list[int]]:
    """parent pid -> its children, from every /proc/<pid>/stat (a few ms for a few hundred processes)."""
    parents: dict[int, list[int]] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return parents
    for name in names:
        if not name.isdigit():
            continue
        try:
            ppid = parse_stat((proc / name / "stat").read_text())[0]
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(name))
    return parents


def read_memory(proc: Path = PROC) -> tuple[int, int] | None:
    """The machine's memory (used, total) in bytes from /proc/meminfo (used: total less available); or None."""
    fields: dict[str, int] = {}
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("MemTotal", "MemAvailable"):
                fields[name] = int(rest.split()[0]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    if "MemTotal" not in fields or "MemAvailable" not in fields:
        return None
    return fields["MemTotal"] - fields["MemAvailable"], fields["MemTotal"]


class WorkerMeter:
    """CPU % and resident memory of a worker process and its children, between one look and the next. CPU % is
    that of top: 100 per busy core. The children are looked for every few seconds, not at every look."""

    def __init__(self, proc: Path = PROC):
        self.proc = proc
        self.pid: int | None = None
        self._cpu: dict[int, float] = {}  # pid -> CPU seconds at the last look
        self._at: float | None = None
        self._kids: list[int] = []
        self._kids_at = -CHILDREN_EVERY

    def sample(self, pid: int | None, now: float | None = None) -> tuple[float | None, int | None]:
        """(CPU % since the last look, None on the first; resident bytes) of `pid` and its children, or
        (None, None) where /proc does not tell."""
        now = time.monotonic() if now is None else now
        if pid != self.pid:
            self.pid, self._cpu, self._at, self._kids, self._kids_at = pid, {}, None, [], -CHILDREN_EVERY
        if pid is None:
            return None, None
        if pid != os.getpid() and now - self._kids_at >= CHILDREN_EVERY:  # ours: the TUI's children are not it
            self._kids, self._kids_at = children(pid, self.proc), now
        samples = {p: s for p in (pid, *self._kids) if (s := read_process(p, self.proc)) is not None}
        if pid not in samples:
            self._cpu, self._at = {}, None
            return None, None
        percent = None
        if self._at is not None and now > self._at:
            used = sum(s.cpu_s - self._cpu[p] for p, s in samples.items() if p in self._cpu)
            percent = max(0.0, 100 * used / (now - self._at))
        self._cpu, self._at = {p: s.cpu_s for p, s in samples.items()}, now
        return percent, sum(s.rss for s in samples.values())


# --- the GPU, from nvidia-smi -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuSample:
    """One GPU as nvidia-smi tells it: utilisation %, memory used and total (MiB); None where it says [N/A]."""

    utilisation: float | None
    used_mib: float | None
    total_mib: float | None


def parse_gpus(text: str) -> list[GpuSample]:
    """The GPUs of `nvidia-smi --query-gpu=utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits`,
    one line each, in nvidia-smi's order."""

    def number(value: str) -> float | None:
        try:
            return float(value)
        except ValueError:  # "[N/A]", "[Not Supported]" (a MIG slice, some laptops)
            return None

    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append(GpuSample(*(number(p) for p in parts)))
    return gpus


def query_gpus(timeout: float = GPU_TIMEOUT) -> list[GpuSample] | None:
    """Every GPU's use now, or None: no nvidia-smi on the PATH, or it failed or took longer than `timeout` s.
    Blocking: call it from a thread."""
    if shutil.which(GPU_QUERY[0]) is None:
        return None
    try:
        done = subprocess.run(GPU_QUERY, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_gpus(done.stdout) if done.returncode == 0 else None


def gpu_index(device: str | None, visible: str | None = None) -> int | None:
    """nvidia-smi's index of the GPU a run's `device` names ("cuda:1 NVIDIA H100", "cuda"), or None when it
    is not a CUDA device. `visible`: CUDA_VISIBLE_DEVICES (the worker inherits the TUI's), which renumbers
    the GPUs torch sees."""
    if not device or not device.startswith("cuda"):
        return None
    name = device.split()[0]
    try:
        index = int(name.partition(":")[2] or 0)
    except ValueError:
        index = 0
    order = [v.strip() for v in (visible or "").split(",") if v.strip()]
    if order and all(v.isdigit() for v in order) and index < len(order):
        return int(order[index])
    return index


# --- the run's pace, from its events ----------------------------------------------------------------------


class Pace:
    """Iterations per second and the time left, folded from the `train` phase's Progress events. Each stage
    trains the same number of iterations (ContextStarted.iterations), so the iterations done are the stage's
    index times that plus its step. The rate shown is that of the last `window` seconds; the time left uses the
    mean rate since this session's first progress (evaluation and consolidation included), counted down from
    the last event. A resumed session starts its own clock."""

    def __init__(self, window: float = 10.0, stall: float = 30.0):
        self.window, self.stall = window, stall
        self.stages: int | None = None
        self.iterations: int | None = None
        self.first: tuple[float, int] | None = None  # (t, iterations done) of this session's first progress
        self.recent: deque[tuple[float, int]] = deque()

    def apply(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.stages, self.first = event.contexts, None
            self.recent.clear()
        elif isinstance(event, ContextStarted):
            self.iterations = event.iterations
        elif isinstance(event, Progress) and event.phase == "train":
            per_stage = self.iterations or event.total
            done = event.context * per_stage + event.step
            if self.recent and done < self.recent[-1][1]:  # trained again from an earlier point: a new clock
                self.first = None
                self.recent.clear()
            point = (event.t, done)
            if self.first is None:
                self.first = point
            self.recent.append(point)
            while len(self.recent) > 2 and self.recent[0][0] < event.t - self.window:
                self.recent.popleft()

    @property
    def done(self) -> int | None:
        return self.recent[-1][1] if self.recent else None

    @property
    def total(self) -> int | None:
        return self.stages * self.iterations if self.stages and self.iterations else None

    @property
    def rate(self) -> float | None:
        """Iterations per second over the last few seconds of progress."""
        return _rate(self.recent[0], self.recent[-1]) if self.recent else None

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left (wall clock `now`, epoch seconds, as the events' `t`); None until two progress points
        have come, or once the run has made no progress for `stall` s past its estimate."""
        if not self.recent or self.first is None or self.total is None:
            return None
        last_t, done = self.recent[-1]
        remaining = max(0, self.total - done)
        if remaining == 0:
            return 0.0
        mean = _rate(self.first, self.recent[-1])
        if not mean:
            return None
        at_last = remaining / mean
        since = max(0.0, (time.time() if now is None else now) - last_t)
        if since > at_last + self.stall:
            return None
        return max(0.0, at_last - since)


def _rate(first: tuple[float, int], last: tuple[float, int]) -> float | None:
    seconds, steps = last[0] - first[0], last[1] - first[1]
    return steps / seconds if seconds > 0 and steps > 0 else None


# --- the line ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemFigures:
    """What the line shows; None: unknown (shown as "–"), `gpu` None: not on a GPU (left out)."""

    cpu: float | None = None
    rss: int | None = None
    memory: tuple[int, int] | None = None
    gpu: GpuSample | None = None
    rate: float | None = None
    eta: float | None = None


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n:.0f} B"


def fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "– it/s"
    if rate >= 1000:
        return f"{rate / 1000:.1f}k it/s"
    return f"{rate:.0f} it/s" if rate >= 10 else f"{rate:.1f} it/s"


def fmt_percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def system_line(figures: SystemFigures, width: int) -> Text:
    """`worker cpu 98% mem 1.2 GB · ram 7.1/15.6 GB · gpu 87% 3.1/79.6 GB · 1.2k it/s · eta 3m 12s` in at most
    `width` cells: the parts that matter least go first (the machine's memory, then the worker's figures, then
    the GPU's); the pace stays."""
    used, total = figures.memory or (None, None)
    parts: list[tuple[int, Text]] = [  # (drop rank: the highest goes first, the part)
        (2, Text.assemble(("worker cpu ", "dim"), fmt_percent(figures.cpu), (" mem ", "dim"), fmt_bytes(figures.rss))),
        (3, Text.assemble(("ram ", "dim"), _used_of(used, total, scale=1)))]
    gpu = figures.gpu
    if gpu is not None:
        parts.append((1, Text.assemble(("gpu ", "dim"), fmt_percent(gpu.utilisation), " ",
                                       _used_of(gpu.used_mib, gpu.total_mib, scale=1 << 20))))
    parts.append((0, Text(fmt_rate(figures.rate), "bold")))
    parts.append((0, Text.assemble(("eta ", "dim"), (fmt_duration(figures.eta), "bold"))))
    separator = Text(" · ", "dim")
    line = separator.join([text for _, text in parts])
    while line.cell_len > width and max(rank for rank, _ in parts) > 0:
        worst = max(rank for rank, _ in parts)
        parts = [(rank, text) for rank, text in parts if rank != worst]
        line = separator.join([text for _, text in parts])
    line.truncate(max(width, 0), overflow="ellipsis")
    return line


def _used_of(used: float | None, total: float | None, scale: int) -> str:
    if used is None or total is None:
        return "–"
    total_text = fmt_bytes(total * scale)
    value, unit = total_text.rsplit(" ", 1)
    size = {"GB": 1 << 30, "MB": 1 << 20, "kB": 1 << 10, "B": 1}[unit]
    return f"{used * scale / size:.1f}/{value} {unit}"


class SystemProbe:
    """Where the line's figures come from: this machine, by default. A test that draws the screen passes one
    with fixed answers (the figures of a real machine change from one drawing to the next)."""

    def __init__(self) -> None:
        self.meter = WorkerMeter()

    def worker(self, pid: int | None) -> tuple[float | None, int | None]:
        return self.meter.sample(pid)

    def memory(self) -> tuple[int, int] | None:
        return read_memory()

    def can_query_gpus(self) -> bool:
        return shutil.which(GPU_QUERY[0]) is not None

    def gpus(self) -> list[GpuSample] | None:
        """Blocking (a process start): called from a thread."""
        return query_gpus()

    def now(self) -> float:
        return time.time()
