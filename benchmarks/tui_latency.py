"""How quickly the TUI answers: first screen after launch, and key presses while a run floods it with events.

Everything runs for real: `cltui --runs-dir DIR` in a pseudo-terminal (100x30, xterm-256color), its output
read by a thread that timestamps every chunk.

- First screen: from spawning the process to the runs table (20 finished runs) and the footer painted; also
  to the first byte. Target < 1.5 s.
- Key latency: `enter` opens a running run's live screen while a fake worker appends 1000 Progress events
  per second to its events.jsonl; then `s` is pressed again and again, and the time from writing the key
  to the stop question ("Stop run <id>?") appearing on the terminal is measured (`n` dismisses it between
  presses). Target < 100 ms. The same is measured first with no events (the cost of the key itself), and
  also: the TUI's CPU use while following, and how long a Progress event takes to reach the screen.

- With `--runs N` (e.g. 500): the runs folder holds N finished runs (5 methods x seeds x 2 iteration
  counts) and the runs table's own keys are timed instead of the live screen's: first screen, then `o`
  (sort by the next column), `O` (reverse), `g` (group by method / preset / scenario / iterations / off)
  and each character of the filter `method:er` typed after `/`, from writing the key to the table's
  header or title repainted. Targets as above: first screen < 1.5 s, key < 100 ms.

    python benchmarks/tui_latency.py [--launches 3] [--presses 20] [--rate 1000]
    python benchmarks/tui_latency.py --runs 500 [--launches 3] [--presses 10]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.files import write_json_atomic
from core.runs.events import ContextStarted, PhaseStarted, Progress, RunStarted, to_json
from core.runs.record import new_run_record
from core.schema.presets import build_config

COLS, ROWS = 100, 30
TOTAL = 10_000_000  # the flooded phase's total steps: never reached
RUNNING = "20260101-120000-split-digits-class-none-s0"
STEP = re.compile(r"(\d+)/10000000")  # the flooded phase's progress, as the live tree paints it


class Terminal:
    """A process on a pseudo-terminal, its output collected with the time each chunk arrived."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.started = time.time()
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
                                        start_new_session=True)
        os.close(slave)
        self.fd = master
        self.text = ""
        self.times: list[tuple[int, float]] = []  # (end offset in text, arrival time)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.time()  # wall clock: comparable with the events' own times
            with self.lock:
                self.text += chunk.decode("utf-8", errors="replace")
                self.times.append((len(self.text), now))

    def mark(self) -> int:
        with self.lock:
            return len(self.text)

    def send(self, keys: bytes) -> float:
        sent = time.time()
        os.write(self.fd, keys)
        return sent

    def arrival(self, offset: int) -> float:
        return next(t for end, t in self.times if end >= offset)

    def wait_for(self, pattern: str, since: int = 0, timeout: float = 10.0) -> float:
        """When `pattern` (a regex) first appeared in the output after offset `since`."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            with self.lock:
                match = regex.search(self.text, since)
                if match:
                    return self.arrival(match.end())
            time.sleep(0.001)
        raise TimeoutError(f"{pattern!r} did not appear within {timeout} s")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.close(self.fd)


def write_runs(root: Path, count: int) -> list[str]:
    """`count` finished runs, written as a worker leaves them."""
    config = build_config("split-digits", overrides=["benchmark.contexts=5"]).to_dict()
    ids = []
    for i in range(count):
        run_id = f"20250101-{i:06d}-split-digits-class-none-s{i}"
        folder = root / run_id
        folder.mkdir(parents=True)
        record = new_run_record(run_id, "split-digits", config, {})
        matrix = [[0.99 if j == k else 0.0 for j in range(5)] for k in range(5)]
        record.update(status="finished", finished=record["created"], acc_matrix=matrix,
                      metrics={"final_avg_acc": 0.198}, timing={"total_s": 6.0 + i})
        write_json_atomic(folder / "run.json", record)
        ids.append(run_id)
    return ids


MANY_METHODS = ("none", "ewc", "si", "lwf", "er")


def write_many_runs(root: Path, count: int) -> list[str]:
    """`count` finished runs over 5 methods, seeds and 300 / 50 iterations, oldest first."""
    configs = {m: build_config("split-digits", method=m).to_dict() for m in MANY_METHODS}
    ids = []
    for i in range(count):
        method, seed, iterations = MANY_METHODS[i % 5], (i // 5) % 10, 300 if (i // 50) % 2 == 0 else 50
        config = json.loads(json.dumps(configs[method]))
        config["train"].update(seed=seed, iterations=iterations)
        run_id = f"2025{1 + i // 1440:02d}01-{i // 60 % 24:02d}{i % 60:02d}00-split-digits-class-{method}-s{seed}"
        folder = root / run_id
        folder.mkdir(parents=True)
        record = new_run_record(run_id, "split-digits", config, {})
        final = 0.2 + 0.15 * MANY_METHODS.index(method) + 0.01 * seed - (0.05 if iterations == 50 else 0)
        matrix = [[0.99 if j == k else (final if j < k else 0.0) for j in range(5)] for k in range(5)]
        record.update(status="finished", finished=record["created"], acc_matrix=matrix,
                      metrics={"final_avg_acc": round(final, 4)}, timing={"total_s": 6.0 + i % 17})
        write_json_atomic(folder / "run.json", record)
        ids.append(run_id)
    return ids


def table_keys(runs: Path, newest: str, presses: int) -> dict[str, list[float]]:
    """The runs table's keys on a folder of many runs: seconds from each key to the screen answering."""
    term = Terminal([str(Path(sys.executable).parent / "cltui"), "--runs-dir", str(runs)], environment())
    out: dict[str, list[float]] = {"o": [], "O": [], "g": [], "filter": []}
    try:
        term.wait_for(re.escape(newest), timeout=20)
        time.sleep(1.0)

        def press(key: bytes, pattern: str) -> float:
            since = term.mark()
            sent = term.send(key)
            seen = term.wait_for(pattern, since, timeout=10)
            time.sleep(0.2)
            return seen - sent

        for _ in range(presses):
            out["o"].append(press(b"o", "[▲▼]"))  # the sorted column's header is painted with its mark
            out["O"].append(press(b"O", "[▲▼]"))
        for _ in range(presses):
            out["g"].append(press(b"g", "runs in"))  # the title says "by setup" (or no longer groups)
        for _ in range(presses % 2):
            press(b"g", "runs in")  # back to no grouping
        term.send(b"/")
        time.sleep(0.3)
        for char in "method:er":
            # the title quotes the filter after its count (“method:e”: its closing quote moves with every
            # key, so it is painted again), or says a half-typed term (`method:`) is not understood yet
            out["filter"].append(press(char.encode(), "”|not understood"))
        return out
    finally:
        term.send(b"\x1b\x1b")
        time.sleep(0.3)
        term.send(b"q")
        try:
            term.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        term.close()


def many_runs_main(count: int, launches: int, presses: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cltui-latency-"))
    try:
        runs = tmp / "runs"
        ids = write_many_runs(runs, count)
        print(f"cltui --runs-dir {runs} with {count} runs in a {COLS}x{ROWS} pseudo-terminal; {os.cpu_count()} CPUs")
        print("\nfirst screen (spawn -> painted), target < 1500 ms")
        table = []
        for i in range(launches):
            result = first_screen(runs, ids[-1])
            table.append(result["first screen"])
            print(f"  launch {i + 1}: " + " · ".join(f"{k} {ms(v).strip()}" for k, v in result.items()))
        print(f"  first screen: median {ms(statistics.median(table)).strip()}, worst {ms(max(table)).strip()}")
        result = table_keys(runs, ids[-1], presses)
        print(f"\nkeys on the runs table with {count} runs, target < 100 ms")
        summary: dict[str, object] = {"runs": count, "first_screen_ms": [round(1000 * t) for t in table]}
        for key, label in (("o", "o (sort by the next column)"), ("O", "O (reverse the sort)"),
                           ("g", "g (group / next grouping / off)"), ("filter", "typing the filter method:er")):
            values = sorted(result[key])
            print(f"  {label}: median {ms(statistics.median(values)).strip()}, worst {ms(values[-1]).strip()} "
                  f"({[round(1000 * t) for t in result[key]]})")
            summary[f"{key}_ms"] = {"median": round(1000 * statistics.median(values), 1),
                                    "max": round(1000 * values[-1], 1)}
        print(json.dumps(summary))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def writer_main(run_dir: Path, rate: int, seconds: float) -> None:
    """The fake worker: RunStarted, ContextStarted, then `rate` Progress events per second, in 10 ms ticks."""
    with (run_dir / "events.jsonl").open("a") as f:
        for event in (RunStarted(run_id=run_dir.name, contexts=5, device="cpu", config={}),
                      ContextStarted(context=0, classes=[0, 1], iterations=TOTAL),
                      PhaseStarted(context=0, phase="train", total=TOTAL)):
            f.write(to_json(event) + "\n")
        f.flush()
        start = time.monotonic()
        step = 0
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate)
            lines = []
            while step < due:
                step += 1
                lines.append(to_json(Progress(context=0, phase="train", step=step, total=TOTAL, loss=0.5,
                                              samples_per_s=30000.0)) + "\n")
            f.write("".join(lines))
            f.flush()
            time.sleep(0.01)


def start_writer(runs: Path, rate: int, seconds: float) -> subprocess.Popen[bytes]:
    run_dir = runs / RUNNING
    run_dir.mkdir(parents=True)
    writer = subprocess.Popen([sys.executable, __file__, "--writer", str(run_dir), "--rate", str(rate),
                               "--seconds", str(seconds)])
    config = build_config("split-digits").to_dict()
    record = new_run_record(RUNNING, "split-digits", config, {})
    record["pid"] = writer.pid  # alive while it writes: the runs table shows the run as running
    write_json_atomic(run_dir / "run.json", record)
    (run_dir / "worker.log").write_text(f"worker pid {writer.pid} started for {RUNNING}\n")
    return writer


def environment() -> dict[str, str]:
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="", COLUMNS=str(COLS), LINES=str(ROWS))
    env.pop("TEXTUAL", None)
    return env


def first_screen(runs: Path, first_id: str) -> dict[str, float]:
    term = Terminal([str(Path(sys.executable).parent / "cltui"), "--runs-dir", str(runs)], environment())
    try:
        byte = term.wait_for(r".", timeout=20)
        footer = term.wait_for(r"Quit", timeout=20)
        table = term.wait_for(re.escape(first_id), timeout=20)
        return {"first byte": byte - term.started, "footer": footer - term.started,
                "runs table": table - term.started, "first screen": max(footer, table) - term.started}
    finally:
        term.send(b"q")
        try:
            term.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        term.close()


def key_latency(runs: Path, presses: int, rate: int) -> dict[str, Any]:
    term = Terminal([str(Path(sys.executable).parent / "cltui"), "--runs-dir", str(runs)], environment())
    question = re.escape(f"{RUNNING}?")
    try:
        term.wait_for(re.escape(RUNNING), timeout=20)
        time.sleep(0.5)
        since = term.mark()
        term.send(b"\x1b[A" * 30)  # the running run is the newest: to the top of the table
        time.sleep(0.3)
        since = term.mark()
        opened = term.send(b"\r")
        term.wait_for(r"progress", since, timeout=10)
        term.wait_for(r"/10000000", since, timeout=10)  # the tree follows the flood
        open_s = term.wait_for(r"progress", since) - opened
        time.sleep(1.0)
        cpu_before, wall_before = cpu_seconds(term.process.pid), time.monotonic()
        time.sleep(3.0)  # following only, no keys
        cpu = (cpu_seconds(term.process.pid) - cpu_before) / (time.monotonic() - wall_before)
        latencies = []
        painted: list[tuple[int, float]] = []  # (step, when it reached the terminal)
        for _ in range(presses):
            since = term.mark()
            sent = term.send(b"s")
            seen = term.wait_for(question, since, timeout=10)
            latencies.append(seen - sent)
            time.sleep(0.15)
            term.send(b"n")
            time.sleep(0.25)
            with term.lock:
                steps = list(STEP.finditer(term.text, since))
                if steps:
                    painted.append((int(steps[-1].group(1)), term.arrival(steps[-1].end())))
        return {"open live": open_s, "latencies": latencies, "painted": painted, "cpu": cpu}
    finally:
        term.send(b"\x1b")
        time.sleep(0.3)
        term.send(b"q")
        try:
            term.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        term.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ms(seconds: float) -> str:
    return f"{1000 * seconds:7.1f} ms"


def report(runs: Path, rate: int, result: dict[str, Any]) -> dict[str, float]:
    latencies = sorted(result["latencies"])
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    events = sum(1 for _ in (runs / RUNNING / "events.jsonl").open())
    print(f"\nkey latency with {rate} Progress events/s appended to the live run ({events} events written), "
          f"target < 100 ms")
    print(f"  enter -> live screen painted: {ms(result['open live']).strip()}")
    print(f"  the TUI process uses {100 * result['cpu']:.0f}% of one core following it (no keys pressed)")
    print(f"  s -> stop question painted, {len(latencies)} presses: median {ms(statistics.median(latencies)).strip()}, "
          f"p95 {ms(p95).strip()}, worst {ms(latencies[-1]).strip()}")
    print(f"  every press (ms): {[round(1000 * t) for t in result['latencies']]}")
    written = {}  # step -> when the writer appended it
    for line in (runs / RUNNING / "events.jsonl").open():
        event = json.loads(line)
        if event["event"] == "Progress":
            written[event["step"]] = event["t"]
    lags = sorted(t - written[step] for step, t in result["painted"] if step in written)
    if lags:
        print(f"  a Progress event reaches the screen {ms(statistics.median(lags)).strip()} after it is written "
              f"(median; worst {ms(lags[-1]).strip()})")
    return {"median": round(1000 * statistics.median(latencies), 1), "p95": round(1000 * p95, 1),
            "max": round(1000 * latencies[-1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launches", type=int, default=3)
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--rate", type=int, default=1000, help="Progress events per second")
    parser.add_argument("--runs", type=int, default=0,
                        help="time the runs table's keys (sort, group, filter) with this many runs in the folder")
    parser.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer_main(args.writer, args.rate, args.seconds)
        return
    if args.runs:
        many_runs_main(args.runs, args.launches, args.presses)
        return

    tmp = Path(tempfile.mkdtemp(prefix="cltui-latency-"))
    try:
        runs = tmp / "runs"
        ids = write_runs(runs, 20)
        print(f"cltui --runs-dir {runs} in a {COLS}x{ROWS} pseudo-terminal; {os.cpu_count()} CPUs")
        print("\nfirst screen (spawn -> painted), target < 1500 ms")
        results = []
        for i in range(args.launches):
            result = first_screen(runs, ids[-1])
            results.append(result)
            print(f"  launch {i + 1}: " + " · ".join(f"{k} {ms(v).strip()}" for k, v in result.items()))
        table = [r["first screen"] for r in results]
        print(f"  first screen (runs table and footer painted): median {ms(statistics.median(table)).strip()}, "
              f"worst {ms(max(table)).strip()}")

        summary: dict[str, object] = {"first_screen_ms": [round(1000 * t) for t in table]}
        for rate in (0, args.rate):  # the same keys on an idle live screen, then under the flood
            shutil.rmtree(runs / RUNNING, ignore_errors=True)
            writer = start_writer(runs, rate, seconds=30 + args.presses)
            try:
                result = key_latency(runs, args.presses, rate)
            finally:
                writer.kill()
                writer.wait()
            summary[f"key_latency_ms_at_{rate}_events_per_s"] = report(runs, rate, result)
        print(json.dumps(summary))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
