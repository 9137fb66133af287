"""Follow a run from its folder: a thread worker reads what was appended to events.jsonl and worker.log since
its last look and posts ONE message per batch (events, log lines, and the run's status when it changes).

It works the same for a run this TUI started and for one another process writes (a headless `cltui run` in
another terminal): the run directory is the only channel.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from textual import work
from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from core.runs.events import Event, from_json
from core.runs.paths import EVENTS, RUN_JSON, WORKER_LOG, StoreError, open_checked
from core.runs.record import read_run_json
from core.runs.store import RunEntry

CHUNK = 1 << 20  # bytes read per look: a long history arrives in several batches, the UI stays responsive
LOG_TAIL_BYTES = 16 << 10  # a long worker.log: only its end is worth showing


class LineTail:
    """The complete lines appended to a file since the last read. A file that does not exist yet reads as
    empty, a partial last line waits for its newline, a file that shrank (replaced) is read from its start."""

    def __init__(self, path: Path, from_end: int | None = None):
        self.path = path
        self.offset = 0
        self.behind = False  # more than one chunk was waiting: read again at once
        self._from_end = from_end  # start this many bytes before the end (at a line start), once

    def read(self) -> list[str]:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return []
        if not stat.S_ISREG(st.st_mode):  # a link, a FIFO, a device: never followed nor read (core/runs/paths.py)
            return []
        size = st.st_size
        if self._from_end is not None:
            self.offset, skip_partial = max(0, size - self._from_end), size > self._from_end
            self._from_end = None
        else:
            skip_partial = False
        if size < self.offset:
            self.offset = 0
        if size == self.offset:
            self.behind = False
            return []
        try:
            with open_checked(self.path) as f:
                f.seek(self.offset)
                data = f.read(min(size - self.offset, CHUNK))
        except (FileNotFoundError, StoreError):  # removed (or replaced by a link) since the stat
            return []
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) == CHUNK:  # a line longer than a chunk is not an event: skip it
                self.offset += len(data)
            self.behind = False
            return []
        self.offset += end + 1
        self.behind = self.offset < size
        lines = data[:end].decode("utf-8", errors="replace").split("\n")
        return lines[1:] if skip_partial else lines


def parse_events(lines: list[str]) -> tuple[list[Event], int]:
    """The events among `lines`, and how many lines were not events (damaged, or from a newer cltui)."""
    events: list[Event] = []
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            events.append(from_json(line))
        except (ValueError, TypeError):
            skipped += 1
    return events, skipped


def run_status(run_dir: Path) -> str:
    """run.json's status, "stale" for a run whose worker is gone without a word, "unreadable" for a damaged one."""
    try:
        return RunEntry(run_dir.name, run_dir, read_run_json(run_dir)).status
    except StoreError:
        return "unreadable" if (run_dir / RUN_JSON).exists() else "missing"


class RunFollower(Widget):
    """Invisible: follows `run_dir` while mounted and posts `RunFollower.Batch` messages to its screen."""

    DEFAULT_CSS = "RunFollower { display: none; }"

    @dataclass
    class Batch(Message):
        """What appeared since the last batch."""

        events: list[Event] = field(default_factory=list)
        log_lines: list[str] = field(default_factory=list)
        status: str | None = None  # run.json's status, only when it changed
        skipped: int = 0  # events.jsonl lines that were not events

    def __init__(self, run_dir: Path, interval: float = 0.1, status_interval: float = 1.0):
        super().__init__()
        self.run_dir, self.interval, self.status_interval = run_dir, interval, status_interval
        self._resend = False

    def resend_status(self) -> None:
        """Post run.json's status at the next look even if it has not changed (the screen set aside the one it
        was sent: a resumed run's previous end)."""
        self._resend = True

    def on_mount(self) -> None:
        self.follow()

    @work(thread=True, exclusive=True, exit_on_error=False, group="follow")
    def follow(self) -> None:
        worker = get_current_worker()
        events_tail = LineTail(self.run_dir / EVENTS)
        log_tail = LineTail(self.run_dir / WORKER_LOG, from_end=LOG_TAIL_BYTES)
        last_status: str | None = None
        next_status_check = 0.0
        while not worker.is_cancelled:
            events, skipped = parse_events(events_tail.read())
            log_lines = log_tail.read()
            status = None
            now = time.monotonic()
            if self._resend:
                self._resend, last_status, next_status_check = False, None, 0.0
            if now >= next_status_check:  # run.json: a final status, or a worker gone without a final event
                next_status_check = now + self.status_interval
                current = run_status(self.run_dir)
                if current != last_status:
                    status = last_status = current
            if events or log_lines or status or skipped:
                self.post_message(self.Batch(events, log_lines, status, skipped))
            if not (events_tail.behind or log_tail.behind):
                time.sleep(self.interval)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:  # a bug, or the run folder became unreadable: say so, stay up
            self.notify(f"stopped following {self.run_dir.name}: {event.worker.error}", severity="error",
                        timeout=10)
