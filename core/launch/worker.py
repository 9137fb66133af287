"""The worker: a run in its own spawned process, its events back over a multiprocessing queue.

The worker writes everything to its run directory itself (run.json, events.jsonl, worker.log with
its stdout and stderr), so any other process can follow the run from disk. It stops cleanly, saving
the run as cancelled, when asked (`RunHandle.stop()`), on SIGTERM or SIGHUP, or when its parent
process dies. Ctrl+C in the terminal is the parent's to handle: the worker ignores SIGINT, so the
parent decides between a clean stop and a kill.

The TUI starts its runs detached instead (`start_detached`, `python -m core.launch.worker RUN_DIR`): a process in
its own session that outlives the TUI, reads its config from run.json and talks only through the run
directory; SIGTERM stops it cleanly.

Run control lives here, not in the faces: `stop_run` (a polite stop, or a kill when that was not enough),
`stop_and_wait` (stop runs and wait for their ends, killing one that outstays its grace period), `CtrlC` (the
Ctrl+C policy: the first press stops, the second kills) and `follow` (a run's events until it ends, Ctrl+C
applied). The faces never signal a process themselves.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import queue as queue_module
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

from core.runs import threads as cpu_threads
from core.runs.events import TERMINAL, Event, RunCancelled, RunFailed
from core.runs.lock import RunLock, pid_alive
from core.runs.paths import WORKER_LOG, StoreError, inside, open_checked
from core.runs.record import RunRecord, now_iso, read_record, read_run_json, write_record
from core.runs.store import append_event
from core.schema.config import RunConfig


class LockFd:
    """A run's lock (core.runs.lock.RunLock) handed to a worker process, spawned or pooled: pickled, it travels as a
    duplicate of the same open file, so the worker holds the very lock its parent took (one writer per run)."""

    def __init__(self, fd: int):
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        from multiprocessing import reduction

        return _lock_fd_arrived, (reduction.DupFd(self.fd),)


def _lock_fd_arrived(dup: Any) -> LockFd:
    return LockFd(dup.detach())


def _worker_main(config: dict[str, Any], run_dir: str, events: Any, stop: Any, parent_pid: int,
                 threads: cpu_threads.ThreadChoice, resume: bool = False, lock: LockFd | None = None) -> None:
    path = Path(run_dir)
    if lock is not None:  # held for this process's lifetime: the kernel lets go when it ends, however it ends
        RunLock.adopt(lock.fd, path / ".lock", f"run {path.name}")
    # never through a link out of the run folder, never blocked on a FIFO (the parent checked; this is the seal)
    log = os.open(path / WORKER_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    asked_to_stop = _stop_on_signals()

    def watch_parent() -> None:
        while not asked_to_stop.is_set():
            if os.getppid() != parent_pid:
                print(f"{now_iso()} parent process {parent_pid} is gone: stopping the run", flush=True)
                asked_to_stop.set()
            time.sleep(0.5)

    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        status = _train(config, path, threads, resume, events.put,
                        should_stop=lambda: stop.is_set() or asked_to_stop.is_set())
    finally:
        flush(events)
    sys.exit(EXIT_CODES.get(status, 1))


EXIT_CODES = {"finished": 0, "cancelled": 130}


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """For work that trains in the calling process (`cltui merge`): SIGTERM and SIGHUP (`kill`, a closed
    terminal) set the event it yields, which the work checks at each step to end cancelled as a run's worker
    does; the previous handlers come back after. Main thread only."""
    asked = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: asked.set()) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield asked
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_on_signals() -> threading.Event:
    """Line-buffered output (worker.log is followed live), SIGINT ignored, SIGTERM / SIGHUP ask for a clean stop."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asked_to_stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: asked_to_stop.set())
    return asked_to_stop


def _train(config: dict[str, Any], path: Path, threads: cpu_threads.ThreadChoice, resume: bool,
           also: Any, should_stop: Any) -> str:
    """Train in this process with `threads`, every event appended to events.jsonl and handed to `also`; the final
    status."""
    threads = cpu_threads.for_step(threads, config)
    print(f"{now_iso()} worker pid {os.getpid()} started for {path.name}; {threads.threads} CPU threads "
          f"({threads.source})", flush=True)
    cpu_threads.apply(threads)
    from core import training
    unwritable: list[str] = []

    def emit(event: Event) -> None:
        try:
            append_event(path, event)
        except OSError as e:  # a full disk: the event still reaches the parent, and run.json says the rest
            if not unwritable:
                unwritable.append(str(e))
                print(f"{now_iso()} cannot append to events.jsonl ({e}); events go to the parent only", flush=True)
        also(event)

    from core.reporting.live import tracked

    # The run's tracker (MLflow), if its config names one, logs from this process as the events arrive.
    record = training.run(RunConfig.model_validate(config), path, tracked(emit, config, path), should_stop=should_stop,
                       resume=resume)
    print(f"{now_iso()} run {record['status']}", flush=True)
    return record["status"]


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

    def __init__(self, run_dir: Path, process: mp.process.BaseProcess, events: Any, stop_event: Any,
                 lock: RunLock | None = None):
        self.run_dir, self.process, self._events, self._stop = run_dir, process, events, stop_event
        self.terminal: Event | None = None
        self.killed = False
        self.lock = lock  # the parent's copy of the run's lock, let go once the run's end is recorded
        self.started = False  # an event has come: the worker is past its start-up (imports, data)
        self.at_startup = False  # stopped before that: killed, and recorded cancelled here

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def stop(self) -> None:
        """Ask the worker to stop at its next progress check and save the run as cancelled. A worker still
        starting up (importing torch, loading data: no event yet) has nothing to save and would not look at the
        flag for seconds: it is killed now, and the run recorded cancelled here."""
        self._stop.set()
        if not self.started and self.terminal is None and self.process.is_alive():
            self.at_startup = True
            self.kill()

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
            self.started = True
            if isinstance(event, TERMINAL):
                self.terminal = event
        return out

    def release(self) -> None:
        """Let go of the parent's copy of the run's lock (the worker's dies with it)."""
        if self.lock is not None:
            self.lock.release()

    @property
    def done(self) -> bool:
        return self.terminal is not None

    def pump(self, timeout: float = 0.1) -> list[Event]:
        """The events that arrived; once the process is gone without a final event, a RunFailed for it."""
        out = self.poll(timeout)
        if self.terminal is not None:
            self.process.join(timeout=10)
            self.release()
        elif not self.process.is_alive():
            out += self.poll(0.2)  # events still in the pipe
            if self.terminal is None:
                self.terminal = self.mark_dead()
                out.append(self.terminal)
            self.release()
        return out

    def mark_dead(self) -> Event:
        """The worker ended without a final event: killed by us (cancelled), or by something else (failed)."""
        self.process.join(timeout=5)
        code = self.process.exitcode
        cause = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return record_end(self.run_dir, self.killed, f"worker process died ({cause}) without saving the run",
                          STOPPED_AT_STARTUP if self.at_startup else None)


STOPPED_AT_STARTUP = "stopped at start-up, before training started; every completed context is kept"


def record_end(run_dir: Path, killed: bool, cause: str, message: str | None = None) -> Event:
    """Record in run.json (if it still says running) and events.jsonl that a run ended without its own final
    word: cancelled when we killed it, failed otherwise, with the tail of its worker.log. Never raises: a
    record it cannot write (a full disk) stays as the worker left it, every completed context in it."""
    log = run_dir / WORKER_LOG
    try:
        with open_checked(inside(run_dir, WORKER_LOG, action="read")) as f:  # its end only
            f.seek(max(0, os.fstat(f.fileno()).st_size - (64 << 10)))
            tail = "\n".join(f.read().decode(errors="replace").splitlines()[-20:])
    except (OSError, StoreError):  # missing, a link, a FIFO
        tail = ""
    if killed:
        message = message or "worker killed on request; the last completed context is saved"
        event: Event = RunCancelled(reason=message)
    else:
        message = f"{cause}; see {log}"
        event = RunFailed(error=message, traceback=tail)
    try:
        record = read_record(run_dir)
        if record.status == "running":
            record.worker_died(killed, message, tail)
            write_record(run_dir, record)
        append_event(run_dir, event)
    except (StoreError, OSError):
        pass
    return event


_launched: list[Any] = []  # the worker processes this process started (mp.Process or Popen)


def runs_in_flight() -> int:
    """How many of the workers this process started are still running."""
    _launched[:] = [p for p in _launched if (p.is_alive() if hasattr(p, "is_alive") else p.poll() is None)]
    return len(_launched)


def thread_choice(threads: int | cpu_threads.ThreadChoice | None) -> cpu_threads.ThreadChoice:
    """The CPU threads of a new worker: `threads` when the caller chose (a study divides the cores among its
    jobs), else this process's cores shared with the workers it already has running (core/runs/threads.py)."""
    if isinstance(threads, cpu_threads.ThreadChoice):
        return threads
    return cpu_threads.choose(threads, runs=runs_in_flight() + 1)


def start(config: RunConfig, run_dir: Path, threads: int | cpu_threads.ThreadChoice | None = None,
          resume: bool = False, lock: RunLock | None = None) -> RunHandle:
    """Start `config` in a spawned worker process writing to `run_dir` (which must exist); with `resume`,
    continue the run saved there from its last completed context. `threads`: its CPU threads (default: chosen
    by `thread_choice`). `lock`: the run's lock the caller already holds (core.runs.lock.RunLock); else it is taken
    here: RunLocked when another process trains the run, OSError when the folder cannot be written. The worker
    holds it for its lifetime."""
    lock = lock if lock is not None else RunLock.of_run(run_dir).acquire()
    try:
        if not resume:  # the record exists before the process does: a worker that dies at start-up leaves a run
            write_record(run_dir, RunRecord.new(run_dir.name, config.preset, config.to_dict()))
        ctx = mp.get_context("spawn")  # fork would copy a parent that may hold CUDA or UI threads
        events = ctx.Queue()
        stop_event = ctx.Event()
        choice = thread_choice(threads)
        process = ctx.Process(
            target=_worker_main, name=f"cltui-worker-{run_dir.name}",
            args=(config.to_dict(), str(run_dir), events, stop_event, os.getpid(), choice, resume,
                  LockFd(lock.fd) if lock.fd is not None else None),
        )
        process.start()
    except BaseException:
        lock.release()
        raise
    _launched.append(process)
    return RunHandle(run_dir, process, events, stop_event, lock)


# --- detached runs (the TUI) ---------------------------------------------------------------------------


class DetachedRun:
    """The launcher's side of a worker started with `start_detached`: a process in its own session that
    keeps training when the launcher exits. A daemon thread reaps it, and records a run that ended without
    its own final word (killed, crashed) as cancelled or failed, as `RunHandle` does."""

    def __init__(self, run_dir: Path, process: subprocess.Popen[bytes]):
        self.run_dir, self.process = run_dir, process
        self.killed = self.stopping = False
        self._reaper = threading.Thread(target=self._reap, name=f"reap-{run_dir.name}", daemon=True)
        self._reaper.start()

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self._reaper.is_alive()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once the run has ended and been recorded; None if it is still going after `timeout` s."""
        self._reaper.join(timeout)
        return None if self._reaper.is_alive() else self.process.returncode

    def ask_to_stop(self) -> None:
        """SIGTERM, returning at once: the worker saves the run as cancelled at its next step. Sent once: a
        second SIGTERM could reach the worker while it exits, its handler gone, and cut its clean exit short."""
        first = not self.stopping
        self.stopping = True  # however it ends now (even by SIGTERM before its handler is set), it was asked to
        if first and self.alive():
            self.process.send_signal(signal.SIGTERM)  # a no-op once the process is reaped

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (the worker saves the run as cancelled at its next step) and wait until it has ended; a
        worker still going after `timeout` s is killed and recorded as cancelled."""
        self.ask_to_stop()
        if self.wait(timeout) is None:
            self.kill()
        self.wait()

    def kill(self) -> None:
        self.killed = True
        if self.alive():
            self.process.kill()
        self.wait(10)

    def _reap(self) -> None:
        code = self.process.wait()
        try:
            status = read_record(self.run_dir).status
        except StoreError:
            status = "running"
        if status == "running":
            cause = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            asked = self.killed or self.stopping or code == -signal.SIGTERM  # SIGTERM is how a run is stopped
            record_end(self.run_dir, asked, f"worker process died ({cause}) without saving the run")


def start_detached(config: RunConfig, run_dir: Path, threads: int | cpu_threads.ThreadChoice | None = None,
                   resume: bool = False) -> DetachedRun:
    """Start `config` in a worker process of its own session writing to `run_dir` (which must exist). The
    worker survives the caller's exit (and its terminal's hang-up) and reads its config from run.json; this
    process never imports torch. `resume`: continue the run saved in `run_dir` from its last checkpoint (its
    run.json is kept, as `cltui run --resume` keeps it)."""
    run_dir = run_dir.resolve()
    lock = RunLock.of_run(run_dir).acquire()  # RunLocked: another process trains it; the worker keeps it
    try:
        if not resume:
            write_record(run_dir, RunRecord.new(run_dir.name, config.preset, config.to_dict()))
        choice = thread_choice(threads)
        command = [sys.executable, "-m", "core.launch.worker", str(run_dir), "--threads", str(choice.threads),
                   "--threads-from", choice.source, "--lock-fd", str(lock.fd), *(["--resume"] if resume else [])]
        with open_checked(inside(run_dir, WORKER_LOG), "ab") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, pass_fds=(lock.fd,) if lock.fd is not None else ())
    finally:
        lock.release()  # the worker holds its own copy of the same open file
    _launched.append(process)
    return DetachedRun(run_dir, process)


# --- run control: stopping and following runs, the Ctrl+C policy ------------------------------------------


class Stoppable(Protocol):
    """A handle that `stop_run` can stop: `RunHandle`, or an executor's (core.launch.ray_executor.RayRunHandle)."""

    def stop(self) -> None: ...

    def kill(self) -> None: ...


class Followed(Stoppable, Protocol):
    """A handle whose events the caller reads (`RunHandle`, RayRunHandle): what `follow` pumps."""

    @property
    def done(self) -> bool: ...

    terminal: Event | None

    def pump(self, timeout: float = 0.1) -> list[Event]: ...


class StopError(Exception):
    """A run that cannot be asked to stop (no live worker for it, a pid that cannot be signalled); one line."""


def stop_run(run: Stoppable | DetachedRun | Path, kill: bool = False) -> None:
    """Ask a run to stop, returning at once: the worker saves it as cancelled at its next progress check (within
    a second or two in every phase), keeping every completed context. `run` is a handle from `start` (its stop
    flag), from `start_detached` (SIGTERM) or from an executor, or the folder of a run started elsewhere (another
    terminal's `cltui run`, a TUI that has quit): SIGTERM to the worker pid its run.json names, StopError when
    there is none alive. `kill=True` is for when the polite stop was not enough (a second Ctrl+C, a grace period
    over): the worker is killed now and the run recorded as cancelled."""
    if isinstance(run, Path):
        pid = _worker_pid(run)
        try:
            os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        except OSError as e:
            raise StopError(f"could not signal pid {pid}: {e.strerror}") from e
        if kill:
            record_end(run, True, f"worker process {pid} killed on request")
    elif isinstance(run, DetachedRun):
        if kill:
            run.kill()
        else:
            run.ask_to_stop()
    elif kill:
        run.kill()
    else:
        run.stop()


def _worker_pid(run_dir: Path) -> int:
    """The pid of the live worker that run.json names; StopError saying why there is none."""
    try:
        pid = read_run_json(run_dir).get("pid")
    except StoreError as e:
        raise StopError(str(e)) from e
    if not isinstance(pid, int) or isinstance(pid, bool) or pid == os.getpid() or not pid_alive(pid):
        raise StopError(f"no live worker process for this run (pid {pid})")
    return pid


def stop_and_wait(runs: Iterable[DetachedRun], grace: float = 30) -> None:
    """Stop detached runs and wait until each has ended: all are asked at once, so they wind down together
    rather than one by one; one still going after `grace` s is killed and recorded as cancelled. Every run is
    tried; the first error is raised once all have been."""
    runs = list(runs)
    errors: list[Exception] = []
    for run in runs:
        if isinstance(run, DetachedRun):
            try:
                run.ask_to_stop()
            except OSError as e:
                errors.append(e)
    for run in runs:
        try:
            run.stop(timeout=grace)
        except Exception as e:  # noqa: BLE001 - one broken handle must not keep the others running
            errors.append(e)
    if errors:
        raise errors[0]


CtrlCAction = Literal["stop", "kill"]


class CtrlC:
    """Ctrl+C while a face follows its runs, one policy for every face: the first press asks every run to stop
    (each is saved as cancelled after its current step), the next kills them. Inside `with CtrlC() as ctrl_c:`
    SIGINT only counts presses (a flag, never KeyboardInterrupt, so no queue read is cut in half); the caller's
    loop calls `ctrl_c.act(runs)` to apply them. The worker processes ignore SIGINT themselves. Main thread only."""

    def __init__(self, terminate: bool = False) -> None:
        self.pressed = 0
        self._acted = 0
        self._previous: dict[int, Any] = {}
        # terminate: SIGTERM and SIGHUP count as a press too (a face in its own process that a service manager,
        # a closed terminal or `kill` may stop: the run ends cancelled, never left "running")
        self._signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if terminate else (signal.SIGINT,)

    def _on_sigint(self, *_: Any) -> None:
        self.pressed += 1

    def __enter__(self) -> CtrlC:
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._on_sigint)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def act(self, runs: Iterable[Stoppable]) -> CtrlCAction | None:
        """Apply the presses not acted on yet to `runs`: the first stops them, a later one kills them. What was
        done, or None when there was no new press."""
        if self.pressed <= self._acted:
            return None
        self._acted = self.pressed
        action: CtrlCAction = "stop" if self.pressed == 1 else "kill"
        for run in list(runs):
            stop_run(run, kill=action == "kill")
        return action


def follow(run: Followed, on_event: Callable[[Event], None], ctrl_c: CtrlC | None = None,
           on_ctrl_c: Callable[[CtrlCAction], None] | None = None, poll: float = 0.1) -> Event | None:
    """Hand a run's events to `on_event` until it ends, applying `ctrl_c`'s policy to it between reads
    (`on_ctrl_c` hears what was done); its final event."""
    while not run.done:
        for event in run.pump(poll):
            on_event(event)
        action = ctrl_c.act([run]) if ctrl_c is not None else None
        if action is not None and on_ctrl_c is not None:
            on_ctrl_c(action)
    return run.terminal


def _detached_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m core.launch.worker", description="Train the run saved in RUN_DIR "
                                     "(its run.json holds the config), detached from any terminal.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: OMP_NUM_THREADS, else "
                        "the cores of this process's CPU affinity)")
    parser.add_argument("--threads-from", default=None, help=argparse.SUPPRESS)  # why the launcher chose --threads
    parser.add_argument("--resume", action="store_true", help="Continue the run from its last checkpoint.")
    parser.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)  # the run's lock, inherited
    args = parser.parse_args(argv)
    threads = cpu_threads.choose(args.threads)
    if args.threads and args.threads_from:
        threads = cpu_threads.ThreadChoice(args.threads, args.threads_from)
    path: Path = args.run_dir
    if args.lock_fd is not None:
        RunLock.adopt(args.lock_fd, path / ".lock", f"run {path.name}")
    else:  # started by hand: take the run's lock here, or leave it to whoever holds it
        RunLock.of_run(path).acquire()
    asked_to_stop = _stop_on_signals()
    record = read_record(path)
    # The launcher wrote run.json with its own pid; the run lives as long as this process does.
    record.pid = os.getpid()
    write_record(path, record)
    status = _train(record.config.model_dump(mode="json"), path, threads, args.resume, lambda event: None,
                    asked_to_stop.is_set)
    sys.exit(EXIT_CODES.get(status, 1))


if __name__ == "__main__":
    _detached_main()
