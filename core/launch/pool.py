"""A pool of worker processes for a study: each imports torch once and trains many runs one after another.

A study of short runs (`cltui compare`, `cltui sweep`) would otherwise spend seconds per run starting a process
and importing torch. A pooled run is still an ordinary run: its own folder, events.jsonl, run.json and worker.log
(the worker points its stdout and stderr at the run's log while it trains it), written by the same `_train` as a
run in its own process (core/launch/worker.py). What the pool adds:

- one task queue and one event queue per worker; an event travels tagged with its run's number in the pool, so
  a handle never reads another run's events;
- a stop is a number, not a flag: `stop()` writes its run's number into the worker's shared stop slot, and only
  that run sees it at its next progress check (a stop of a run that has just ended cannot reach the next one);
- crash isolation: a worker that dies (killed, segfault, out of memory) ends only its current run, recorded as
  failed with the tail of its worker.log (cancelled when we killed it, as `RunHandle` does), and the next run
  given to that slot gets a fresh process;
- the same signals as a worker of its own: SIGINT ignored (Ctrl+C is the parent's), SIGTERM / SIGHUP or the
  parent's death stop the current run cleanly (cancelled, every completed context kept) and end the worker.

    with WorkerPool(jobs) as pool:
        handle = pool.start(config, run_dir, threads=choice)   # as core.launch.worker.start
        ... handle.pump() / handle.stop() / handle.kill() ...
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue as queue_module
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

from core.launch.worker import LockFd, RunHandle, _stop_on_signals, _train, flush, record_end, thread_choice
from core.runs import threads as cpu_threads
from core.runs.events import TERMINAL, Event
from core.runs.lock import RunLock
from core.runs.paths import WORKER_LOG
from core.runs.record import RunRecord, now_iso, write_record
from core.schema.config import RunConfig

IDLE_POLL_S = 0.5  # how often an idle worker looks at its parent and its stop signals


def _point_output_at(path: str) -> None:
    """This process's stdout and stderr (file descriptors 1 and 2, so C-level output too) now go to `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


def _pool_worker_main(tasks: Any, events: Any, stop: Any, leaving: Any, parent_pid: int,
                      threads: cpu_threads.ThreadChoice) -> None:
    """A pooled worker: import torch once, then train each task `(number, config, run_dir, threads, resume)` that
    arrives until None, a signal or the parent's death. Between runs its output goes nowhere (nothing outside
    the runs folder is written). `leaving` is set as soon as it will take no more runs: before the run it stops
    on a signal reports its end, so the pool never hands a new run to a worker on its way out."""
    _point_output_at(os.devnull)
    asked_to_stop = _stop_on_signals()

    def on_signal(*_: Any) -> None:
        leaving.set()
        asked_to_stop.set()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    def watch_parent() -> None:
        while not asked_to_stop.is_set():
            if os.getppid() != parent_pid:
                print(f"{now_iso()} parent process {parent_pid} is gone: stopping the run", flush=True)
                on_signal()
            time.sleep(IDLE_POLL_S)

    threading.Thread(target=watch_parent, daemon=True).start()
    cpu_threads.apply(threads)  # OpenMP's environment before torch loads
    with contextlib.suppress(Exception):  # a failure shows again, with its traceback, in the first run's log
        import core.training.train  # noqa: F401 - the import every run would pay
    served = 0
    try:
        while not asked_to_stop.is_set():
            try:
                task = tasks.get(timeout=IDLE_POLL_S)
            except queue_module.Empty:
                continue
            if task is None:
                leaving.set()
                break
            number, config, run_dir, choice, resume, lock_fd = task
            # the run's lock, held while this process trains it (and dropped by the kernel if it dies)
            lock = RunLock.adopt(lock_fd.fd, Path(run_dir) / ".lock", f"run {Path(run_dir).name}") \
                if lock_fd is not None else None
            try:
                _point_output_at(str(Path(run_dir) / WORKER_LOG))
                served += 1
                print(f"{now_iso()} pooled worker pid {os.getpid()}: run {served} of this process", flush=True)
                _train(config, Path(run_dir), choice, resume, lambda event, n=number: events.put((n, event)),
                       should_stop=lambda n=number: stop.value == n or asked_to_stop.is_set())
                _point_output_at(os.devnull)
            finally:
                if lock is not None:
                    lock.release()
    finally:
        flush(events)


class _Slot:
    """One worker process of the pool and its queues; `current` is the run it was last given."""

    def __init__(self, ctx: Any, threads: cpu_threads.ThreadChoice, index: int):
        self.tasks, self.events = ctx.Queue(), ctx.Queue()
        self.stop = ctx.Value("q", 0)
        self.leaving = ctx.Event()
        self.process = ctx.Process(target=_pool_worker_main, name=f"cltui-pool-worker-{index}",
                                   args=(self.tasks, self.events, self.stop, self.leaving, os.getpid(), threads))
        self.process.start()
        self.current: PooledRun | None = None

    @property
    def idle(self) -> bool:
        return self.current is None or self.current.done

    def close_queues(self) -> None:
        for q in (self.tasks, self.events):
            q.cancel_join_thread()
            q.close()


class PooledRun(RunHandle):
    """The parent's side of a run in a pooled worker: `RunHandle`'s interface (pump, stop, kill, done, terminal,
    process), reading only its own run's events."""

    def __init__(self, run_dir: Path, slot: _Slot, number: int, lock: RunLock | None = None):
        super().__init__(run_dir, slot.process, slot.events, slot.stop, lock)
        self.number = number

    def stop(self) -> None:
        """Ask this run (and no later one of the same worker) to stop at its next progress check, saved as cancelled."""
        with self._stop.get_lock():
            self._stop.value = self.number

    def poll(self, timeout: float = 0.1, limit: int = 1000) -> list[Event]:
        out: list[Event] = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < limit and self.terminal is None:
                left = deadline - time.monotonic()
                number, event = self._events.get(timeout=left) if not out and left > 0 else self._events.get_nowait()
                if number != self.number:  # a stale event of an earlier run of this worker: not ours
                    continue
                out.append(event)
                if isinstance(event, TERMINAL):
                    self.terminal = event
        except queue_module.Empty:
            pass
        return out

    def pump(self, timeout: float = 0.1) -> list[Event]:
        """The events that arrived; once the worker is gone without this run's final event, a RunFailed for it
        (RunCancelled when we killed it). The worker itself lives on after a run that ended normally."""
        out = self.poll(timeout)
        if self.terminal is None and not self.process.is_alive():
            out += self.poll(0.2)  # events still in the pipe
            if self.terminal is None:
                self.terminal = self.mark_dead()
                out.append(self.terminal)
        if self.terminal is not None:
            self.release()
        return out


class WorkerPool:
    """Up to `size` pooled worker processes, started when first needed and replaced when one dies. `start` has
    `core.launch.worker.start`'s signature, so a study can use `pool.start` wherever it would start a process per run;
    at most `size` runs may be in flight at once."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self._ctx = mp.get_context("spawn")  # fork would copy a parent that may hold CUDA or UI threads
        self._slots: list[_Slot] = []
        self._numbers = 0

    def start(self, config: RunConfig, run_dir: Path, threads: int | cpu_threads.ThreadChoice | None = None,
              resume: bool = False) -> PooledRun:
        """Train `config` into `run_dir` (which must exist) in an idle worker of the pool (a new one if none is
        idle and the pool is not full); `resume` continues the run saved there. The run's lock is taken first
        (RunLocked: another process trains it) and handed to the worker, as `core.launch.worker.start` does."""
        lock = RunLock.of_run(run_dir).acquire()
        try:
            if not resume:  # the record exists before a worker takes the run: a worker that dies first leaves a run
                write_record(run_dir, RunRecord.new(run_dir.name, config.preset, config.to_dict()))
            choice = thread_choice(threads)
            slot = self._idle_slot(choice)
        except BaseException:
            lock.release()
            raise
        self._numbers += 1
        handle = PooledRun(run_dir, slot, self._numbers, lock)
        slot.current = handle
        slot.tasks.put((handle.number, config.to_dict(), str(run_dir), choice, resume,
                        LockFd(lock.fd) if lock.fd is not None else None))
        return handle

    def _idle_slot(self, choice: cpu_threads.ThreadChoice) -> _Slot:
        for i, slot in enumerate(self._slots):
            if slot.idle:
                if slot.leaving.is_set() or not slot.process.is_alive():  # died, or ends after a SIGTERM: a new one
                    slot.process.join(timeout=10)
                    if slot.process.is_alive():
                        slot.process.kill()
                        slot.process.join(timeout=5)
                    slot.close_queues()
                    slot = self._slots[i] = _Slot(self._ctx, choice, i)
                return slot
        if len(self._slots) >= self.size:
            raise RuntimeError(f"all {self.size} pooled workers are busy")
        slot = _Slot(self._ctx, choice, len(self._slots))
        self._slots.append(slot)
        return slot

    @property
    def pids(self) -> list[int | None]:
        return [slot.process.pid for slot in self._slots]

    def close(self, grace: float = 30) -> None:
        """Stop the runs still going (cancelled, as a stop would), end every worker and wait for them; a worker
        still there after `grace` s is killed, its run recorded as cancelled."""
        for slot in self._slots:
            if not slot.idle and slot.current is not None:
                slot.current.stop()
            if slot.process.is_alive():
                slot.tasks.put(None)
        deadline = time.monotonic() + grace
        for slot in self._slots:
            while slot.process.is_alive() and time.monotonic() < deadline:
                if slot.current is not None and not slot.current.done:
                    slot.current.pump(0.1)  # keep the pipe drained so the worker can exit
                else:
                    slot.process.join(0.1)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(5)
                if slot.current is not None and not slot.current.done:
                    slot.current.terminal = record_end(slot.current.run_dir, True, "pooled worker killed at close")
            if slot.current is not None:
                slot.current.release()
            slot.close_queues()
        self._slots.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
