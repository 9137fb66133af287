"""Following a worker's events in tests: until its terminal event, or until one that a test awaits (the worker
is killed and the test fails after a timeout rather than hanging)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from core.launch import worker
from core.runs.events import Event, Progress


def drain(handle: worker.RunHandle, timeout: float = 90.0) -> list[Event]:
    """Every event until the terminal one (the worker is killed and the test fails after `timeout` s)."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while not handle.done:
        if time.monotonic() > deadline:
            handle.kill()
            pytest.fail(f"worker gave no terminal event within {timeout} s; got {events[-3:]}")
        events += handle.pump(0.1)
    return events


def wait_for(handle: worker.RunHandle, what: Callable[[Event], bool], timeout: float = 90.0) -> list[Event]:
    """Events until one satisfies `what` (a terminal event before it fails the test)."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while not any(what(e) for e in events):
        if handle.done or time.monotonic() > deadline:
            handle.kill()
            pytest.fail(f"the awaited event did not come (done={handle.done}); last events {events[-3:]}")
        events += handle.pump(0.1)
    return events


def is_training(event: Event) -> bool:
    return isinstance(event, Progress) and event.phase == "train"
