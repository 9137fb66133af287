"""Runs of a study as Ray tasks, for users who outgrow one machine (`cltui compare --executor ray`).

Each run is a Ray task that calls the same `core.training.run` as a local worker, writing its run folder in
a runs directory every node shares (run.json, events.jsonl, checkpoints). The parent follows a run by
reading its events.jsonl, so nothing but the task's final status crosses Ray; a run stops at its next
progress check when a STOP file appears in its folder. GPUs are Ray resources: a task asks for one when
the cluster has any and the run's device is auto or cuda, and Ray sets CUDA_VISIBLE_DEVICES for it.

Ray is optional (`pip install cltui[ray]`) and imported only here, only when asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.launch.worker import record_end
from core.runs.events import TERMINAL, Event, from_json
from core.runs.lock import RunLock
from core.runs.paths import EVENTS, WORKER_LOG
from core.runs.record import RunRecord, write_record
from core.runs.threads import ThreadChoice
from core.schema.config import RunConfig

STOP_FILE = "STOP"


def _train_task(config: dict[str, Any], run_dir: str, resume: bool, threads: int | None) -> str:
    """Runs on a Ray worker: train into the shared run folder, events appended to its events.jsonl."""
    import sys

    from core.runs import threads as cpu_threads
    # Before torch loads in a fresh Ray worker: OpenMP's passive waits and this task's share of the cores. Ray
    # sets OMP_NUM_THREADS to the task's num_cpus, which is what it was asked for.
    cpu_threads.apply(cpu_threads.choose(threads))
    from core import training
    from core.runs.store import append_event

    path = Path(run_dir)
    (path / STOP_FILE).unlink(missing_ok=True)
    saved = sys.stdout, sys.stderr  # Ray reuses its worker processes: put the streams back afterwards
    with (path / WORKER_LOG).open("a", buffering=1) as log:
        sys.stdout = sys.stderr = log
        try:
            print(f"ray task on {os.uname().nodename} pid {os.getpid()} for {path.name}")
            from core.reporting.live import tracked

            emit = tracked(lambda e: append_event(path, e), config, path)  # MLflow, if the config names it
            record = training.run(RunConfig.model_validate(config), path, emit=emit,
                               should_stop=(path / STOP_FILE).exists, resume=resume)
            print(f"run {record['status']}")
        finally:
            sys.stdout, sys.stderr = saved
    return record["status"]


class RayRunHandle:
    """The parent's side of a run executing as a Ray task (the same interface as core.launch.worker.RunHandle)."""

    def __init__(self, ref: Any, run_dir: Path, lock: RunLock | None = None):
        self.ref, self.run_dir = ref, run_dir
        self.lock = lock  # the run's lock, held here while the task runs (a task on another node cannot hold it)
        self.terminal: Event | None = None
        self.killed = False
        self._offset = 0

    @property
    def done(self) -> bool:
        return self.terminal is not None

    def _new_events(self) -> list[Event]:
        path = self.run_dir / EVENTS
        if not path.exists():
            return []
        with path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next call
        self._offset += len(complete)
        events = []
        for line in complete.decode().splitlines():
            try:
                events.append(from_json(line))
            except ValueError:
                continue
        for event in events:
            if isinstance(event, TERMINAL):
                self.terminal = event
        return events

    def pump(self, timeout: float = 0.1) -> list[Event]:
        import ray

        events = self._new_events()
        if self.terminal is None:
            ready, _ = ray.wait([self.ref], timeout=timeout)
            if ready:
                events += self._new_events()
                if self.terminal is None:  # the task ended without a final event: it crashed or was cancelled
                    try:
                        ray.get(self.ref)
                        cause = "ray task ended without saving the run"
                    except Exception as e:  # noqa: BLE001 - whatever Ray reports is the cause
                        cause = f"ray task failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
                    self.terminal = record_end(self.run_dir, self.killed, cause)
                    events.append(self.terminal)
        if self.terminal is not None and self.lock is not None:
            self.lock.release()
        return events

    def stop(self) -> None:
        (self.run_dir / STOP_FILE).touch()

    def kill(self) -> None:
        import ray

        self.killed = True
        ray.cancel(self.ref, force=True)


class RayExecutor:
    def __init__(self, address: str | None = None):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:  # a local Ray instance on this machine
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        self.gpus = ray.cluster_resources().get("GPU", 0)
        self.remote = ray.remote(_train_task)

    def start(self, config: RunConfig, run_dir: Path, threads: int | ThreadChoice | None = None, resume: bool = False
              ) -> RayRunHandle:
        if isinstance(threads, ThreadChoice):
            threads = threads.threads
        lock = RunLock.of_run(run_dir).acquire()  # RunLocked: another process trains it
        try:
            if not resume:
                write_record(run_dir, RunRecord.new(run_dir.name, config.preset, config.to_dict()))
            wants_gpu = self.gpus > 0 and config.train.device in ("auto", "cuda")
            task = self.remote.options(num_cpus=threads or 1, num_gpus=1 if wants_gpu else 0)
            return RayRunHandle(task.remote(config.to_dict(), str(run_dir), resume, threads), run_dir, lock)
        except BaseException:
            lock.release()
            raise

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
