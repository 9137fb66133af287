"""The worker: a run in its own spawned process, its events back over a multiprocessing queue.

The worker writes everything to its run directory itself (run.json, events.jsonl, worker.log with
its stdout and stderr), so any other process can follow the run from disk. It stops cleanly, saving
the run as cancelled, when asked (`RunHandle.stop()`), on SIGTERM or SIGHUP, or when its parent
process dies. Ctrl+C in the terminal is the parent's to handle: the worker ignores SIGINT, so the
parent decides between a clean stop and a kill.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.events import TERMINAL, Event, RunCancelled, RunFailed
from core.store import (
    WORKER_LOG,
    StoreError,
    append_event,
    new_run_record,
    now_iso,
    read_run_json,
    write_json_atomic,
)


def _worker_main(config: dict[str, Any], run_dir: str, events: Any, stop: Any, parent_pid: int,
                 threads: int | None, resume: bool = False) -> None:
    path = Path(run_dir)
    log = os.open(path / WORKER_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asked_to_stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: asked_to_stop.set())

    def watch_parent() -> None:
        while not asked_to_stop.is_set():
            if os.getppid() != parent_pid:
                print(f"{now_iso()} parent process {parent_pid} is gone: stopping the run", flush=True)
                asked_to_stop.set()
            time.sleep(0.5)

    threading.Thread(target=watch_parent, daemon=True).start()
    print(f"{now_iso()} worker pid {os.getpid()} started for {path.name}", flush=True)

    import torch

    if threads:
        torch.set_num_threads(threads)
    from core import train

    def emit(event: Event) -> None:
        append_event(path, event)
        events.put(event)

    try:
        record = train.run(RunConfig.model_validate(config), path, emit,
                           should_stop=lambda: stop.is_set() or asked_to_stop.is_set(), resume=resume)
    finally:
        flush(events)
    print(f"{now_iso()} run {record['status']}", flush=True)
    sys.exit({"finished": 0, "cancelled": 130}.get(record["status"], 1))


def flush(events: Any, timeout: float = 10.0) -> None:
    """Let the queue's feeder thread hand the last events (the final one above all) to the pipe before the
    process exits; give up after `timeout` so a parent that stopped reading cannot make the worker hang."""
    events.close()
    joiner = threading.Thread(target=events.join_thread, daemon=True)
    joiner.start()
    joiner.join(timeout)
    if joiner.is_alive():
        events.cancel_join_thread()


class RunHandle:
    """The parent's side of a running worker."""

    def __init__(self, run_dir: Path, process: mp.process.BaseProcess, events: Any, stop_event: Any):
        self.run_dir, self.process, self._events, self._stop = run_dir, process, events, stop_event
        self.terminal: Event | None = None
        self.killed = False

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def stop(self) -> None:
        """Ask the worker to stop at its next progress check and save the run as cancelled."""
        self._stop.set()

    def kill(self) -> None:
        self.killed = True
        if self.process.is_alive():
            self.process.kill()

    def poll(self, timeout: float = 0.1, limit: int = 1000) -> list[Event]:
        """The events that arrived (waits up to `timeout` for the first one)."""
        out: list[Event] = []
        try:
            out.append(self._events.get(timeout=timeout))
            while len(out) < limit:
                out.append(self._events.get_nowait())
        except queue_module.Empty:
            pass
        for event in out:
            if isinstance(event, TERMINAL):
                self.terminal = event
        return out

    @property
    def done(self) -> bool:
        return self.terminal is not None

    def pump(self, timeout: float = 0.1) -> list[Event]:
        """The events that arrived; once the process is gone without a final event, a RunFailed for it."""
        out = self.poll(timeout)
        if self.terminal is not None:
            self.process.join(timeout=10)
        elif not self.process.is_alive():
            out += self.poll(0.2)  # events still in the pipe
            if self.terminal is None:
                self.terminal = self.mark_dead()
                out.append(self.terminal)
        return out

    def mark_dead(self) -> Event:
        """The worker ended without a final event: killed by us (cancelled), or by something else (failed)."""
        self.process.join(timeout=5)
        code = self.process.exitcode
        cause = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return record_end(self.run_dir, self.killed, f"worker process died ({cause}) without saving the run")


def record_end(run_dir: Path, killed: bool, cause: str) -> Event:
    """Record in run.json (if it still says running) and events.jsonl that a run ended without its own final
    word: cancelled when we killed it, failed otherwise, with the tail of its worker.log."""
    log = run_dir / WORKER_LOG
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""
    if killed:
        status, message = "cancelled", "worker killed on request; the last completed context is saved"
        event: Event = RunCancelled(reason=message)
    else:
        status, message = "failed", f"{cause}; see {log}"
        event = RunFailed(error=message, traceback=tail)
    try:
        record = read_run_json(run_dir)
    except StoreError:
        record = None
    if record is not None and record.get("status") == "running":
        record.update(status=status, finished=now_iso(), error={"message": message, "kind": status, "traceback": tail})
        write_json_atomic(run_dir / "run.json", record)
    append_event(run_dir, event)
    return event


def start(config: RunConfig, run_dir: Path, threads: int | None = None, resume: bool = False) -> RunHandle:
    """Start `config` in a spawned worker process writing to `run_dir` (which must exist); with `resume`,
    continue the run saved there from its last completed context."""
    if not resume:  # the record exists before the process does: a worker that dies at start-up leaves a run
        write_json_atomic(run_dir / "run.json", new_run_record(run_dir.name, config.preset, config.to_dict(), {}))
    ctx = mp.get_context("spawn")  # fork would copy a parent that may hold CUDA or UI threads
    events = ctx.Queue()
    stop_event = ctx.Event()
    process = ctx.Process(
        target=_worker_main, name=f"cltui-worker-{run_dir.name}",
        args=(config.to_dict(), str(run_dir), events, stop_event, os.getpid(), threads, resume),
    )
    process.start()
    return RunHandle(run_dir, process, events, stop_event)
