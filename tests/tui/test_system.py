"""The live screen's system line without a terminal (cltui.tui.state.system): /proc read for this very process
and for a child that works, the machine's memory, nvidia-smi's answer (a stand-in script on the PATH: this machine
may have no GPU), the pace and the time left folded from progress events, and the line cut to a width."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cltui.tui.state.system import (
    GpuSample,
    Pace,
    SystemFigures,
    WorkerMeter,
    children,
    gpu_index,
    parse_gpus,
    parse_stat,
    process_start,
    query_gpus,
    read_memory,
    read_process,
    system_line,
)
from core.runs.events import ContextStarted, Progress, RunStarted

linux = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux's /proc")


# --- /proc ---------------------------------------------------------------------------------------------


@linux
def test_read_process_tells_this_process_cpu_time_and_resident_memory():
    sample = read_process(os.getpid())
    cpu = time.process_time()

    assert sample is not None
    assert abs(sample.cpu_s - cpu) < 0.1  # user + system seconds, as the process itself counts them
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    assert 10 << 20 < sample.rss <= peak + (1 << 20)  # a Python with pytest loaded holds tens of MB
    assert sample.started is not None and sample.started < time.time()


@linux
def test_a_process_start_is_its_wall_clock_start():
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        started = process_start(child.pid)
    finally:
        child.kill()
        child.wait()
    assert started is not None and before - 1.5 < started < time.time() + 0.1  # btime is whole seconds


def test_parse_stat_counts_fields_after_the_command_name():
    # A command name with spaces and a parenthesis: the fields are counted from the last ")".
    line = "4242 (my (odd) name) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0 12345 3133440 413"
    parent, cpu_s, start = parse_stat(line)
    assert (parent, start) == (17, 12345)
    assert cpu_s == pytest.approx(300 / os.sysconf("SC_CLK_TCK"))


@linux
def test_the_meter_gives_this_process_cpu_percent_between_two_looks():
    meter = WorkerMeter()
    t0, c0 = time.monotonic(), time.process_time()
    first, rss = meter.sample(os.getpid(), now=t0)
    while time.monotonic() - t0 < 0.5:  # busy
        pass
    t1, c1 = time.monotonic(), time.process_time()
    percent, _ = meter.sample(os.getpid(), now=t1)

    assert first is None and rss is not None and rss > 0  # one look: no rate yet
    assert percent == pytest.approx(100 * (c1 - c0) / (t1 - t0), abs=10)  # clock ticks are 10 ms


@linux
def test_the_meter_counts_the_workers_children():
    # A headless `cltui run` names its own pid in run.json and trains in a child: the child's CPU and memory
    # are the run's.
    # the busy child ends by itself after 30 s, should the test die before it kills it
    child = "import time\\nx = bytearray(60 << 20)\\nend = time.time() + 30\\nwhile time.time() < end: pass"
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', '{child}'])"
    parent = subprocess.Popen([sys.executable, "-c", code])
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the child started and holds its 60 MB
            kids = children(parent.pid)
            if kids and (sample := read_process(kids[0])) is not None and sample.rss > 60 << 20:
                break
            time.sleep(0.1)
        meter = WorkerMeter()
        t0, before = time.monotonic(), [read_process(p) for p in (parent.pid, kids[0])]
        _, rss = meter.sample(parent.pid, now=t0)
        time.sleep(1.0)
        t1, after = time.monotonic(), [read_process(p) for p in (parent.pid, kids[0])]
        percent, _ = meter.sample(parent.pid, now=t1)
    finally:
        for pid in kids or children(parent.pid):  # the child first: killing the parent alone leaves it spinning
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
    assert before[0] is not None and before[0].rss < 60 << 20 < (rss or 0)  # the child's memory counts
    used = sum(a.cpu_s - b.cpu_s for a, b in zip(after, before, strict=True) if a and b)
    assert used > 0.01  # the busy child ran (a loaded machine gives it what it can)
    assert percent == pytest.approx(100 * used / (t1 - t0), abs=3)  # the child's CPU counts


@linux
def test_read_memory_tells_the_machine_memory():
    memory = read_memory()
    assert memory is not None
    used, total = memory
    assert total == pytest.approx(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), rel=0.01)
    assert 0 < used < total


def test_without_proc_every_figure_reads_as_a_dash(tmp_path):
    # Another OS (or a gone process): nothing to read, nothing raised.
    assert read_process(os.getpid(), proc=tmp_path) is None and read_memory(proc=tmp_path) is None
    meter = WorkerMeter(proc=tmp_path)
    assert meter.sample(os.getpid()) == (None, None)
    line = system_line(SystemFigures(), 80).plain
    assert line == "worker cpu – mem – · ram – · – it/s · eta –"


# --- nvidia-smi ----------------------------------------------------------------------------------------


def test_parse_gpus_reads_one_line_per_gpu_and_na_as_unknown():
    gpus = parse_gpus("87, 3100, 81559\n[N/A], [N/A], 4096\nnot a gpu line\n")
    assert gpus == [GpuSample(87.0, 3100.0, 81559.0), GpuSample(None, None, 4096.0)]


def fake_nvidia_smi(folder: Path, body: str) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    script.chmod(0o755)


def test_query_gpus_asks_nvidia_smi_on_the_path(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, """
        import sys
        assert sys.argv[1:] == ["--query-gpu=utilization.gpu,memory.used,memory.total",
                                "--format=csv,noheader,nounits"], sys.argv
        print("87, 3100, 81559")
        print("3, 10, 81559")
    """)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert query_gpus() == [GpuSample(87.0, 3100.0, 81559.0), GpuSample(3.0, 10.0, 81559.0)]


def test_query_gpus_without_nvidia_smi_or_when_it_hangs_is_none(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert query_gpus() is None
    fake_nvidia_smi(tmp_path, "import time\ntime.sleep(30)\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    started = time.monotonic()
    assert query_gpus(timeout=0.5) is None
    assert time.monotonic() - started < 5


def test_gpu_index_of_a_run_device():
    assert gpu_index("cuda:1 NVIDIA H100 80GB HBM3") == 1
    assert gpu_index("cuda") == 0
    assert gpu_index("cuda:1 NVIDIA H100", visible="2,5") == 5  # torch's cuda:1 is the machine's GPU 5
    assert gpu_index("cpu") is None and gpu_index("mps") is None and gpu_index(None) is None


# --- the pace ------------------------------------------------------------------------------------------


def progress(context: int, step: int, t: float) -> Progress:
    return Progress(context=context, phase="train", step=step, total=300, loss=0.1, t=t)


def test_the_pace_gives_iterations_per_second_and_the_time_left():
    pace = Pace()
    pace.apply(RunStarted(run_id="r", contexts=3, device="cpu", config={}, t=1000.0))
    pace.apply(ContextStarted(context=0, classes=[0, 1], iterations=300, t=1000.0))
    for i in range(4):
        pace.apply(progress(0, 50 + 100 * i, 1001.0 + i))  # 100 it/s
    pace.apply(ContextStarted(context=1, classes=[2, 3], iterations=300, t=1004.0))
    pace.apply(progress(1, 50, 1005.0))  # 350 of 900 done; the evaluation in between slowed it down

    assert pace.total == 900 and pace.done == 350
    assert pace.rate == pytest.approx(300 / 4)  # (350 - 50) iterations in 4 s
    assert pace.eta(now=1005.0) == pytest.approx(550 / 75)  # 550 left at the mean rate
    assert pace.eta(now=1007.0) == pytest.approx(550 / 75 - 2)  # counted down between events
    assert pace.eta(now=1005.0 + 550 / 75 + 60) is None  # no progress for long past the estimate: unknown


def test_a_resumed_session_starts_its_own_clock():
    pace = Pace()
    pace.apply(RunStarted(run_id="r", contexts=3, device="cpu", config={}, t=1000.0))
    pace.apply(ContextStarted(context=0, classes=[0, 1], iterations=300, t=1000.0))
    pace.apply(progress(0, 100, 1001.0))
    pace.apply(progress(0, 200, 1002.0))
    assert pace.eta(now=1002.0) == pytest.approx(7.0)
    # An hour later the run resumes from context 1: the hour is not part of its pace.
    pace.apply(RunStarted(run_id="r", contexts=3, device="cpu", config={}, resumed_from=1, t=4600.0))
    pace.apply(ContextStarted(context=1, classes=[2, 3], iterations=300, t=4610.0))
    assert pace.rate is None and pace.eta(now=4610.0) is None
    pace.apply(progress(1, 100, 4611.0))
    pace.apply(progress(1, 300, 4612.0))  # 200 it/s
    assert pace.rate == pytest.approx(200.0) and pace.eta(now=4612.0) == pytest.approx(1.5)


# --- the line ------------------------------------------------------------------------------------------


FULL = SystemFigures(cpu=98.4, rss=int(1.5 * (1 << 30)), memory=(7 << 30, 16 << 30),
                     gpu=GpuSample(87.0, 3072.0, 81920.0), rate=1234.0, eta=192.0)


def test_the_line_drops_the_least_important_parts_to_fit():
    wide = system_line(FULL, 200).plain
    at_80 = system_line(FULL, 78).plain  # 80 columns less the padding
    narrow = system_line(FULL, 30).plain

    assert wide == ("worker cpu 98% mem 1.5 GB · ram 7.0/16.0 GB · gpu 87% 3.0/80.0 GB · 1.2k it/s · "
                    "eta 3m 12s")
    assert at_80 == "worker cpu 98% mem 1.5 GB · gpu 87% 3.0/80.0 GB · 1.2k it/s · eta 3m 12s"
    assert narrow == "1.2k it/s · eta 3m 12s"
    cpu_only = system_line(SystemFigures(cpu=98.4, rss=1 << 30, memory=(7 << 30, 16 << 30), rate=12.5,
                                         eta=42.0), 78).plain
    assert cpu_only == "worker cpu 98% mem 1.0 GB · ram 7.0/16.0 GB · 12 it/s · eta 42.0 s"
