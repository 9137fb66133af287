"""Where the thread workers' failures go: one handler for every screen and the app.

Workers run with exit_on_error=False so that a bad file never takes the UI down; their failure arrives as a
Worker.StateChanged on the node that started them (it does not bubble), so each screen mixes this in.
"""

from __future__ import annotations

from textual import on
from textual.message_pump import MessagePump
from textual.worker import Worker, WorkerState


class ReportsWorkerErrors(MessagePump):
    @on(Worker.StateChanged)
    def worker_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.app.notify(f"internal error in {event.worker.name or event.worker.group}: "
                            f"{type(error).__name__}: {error}", title="cltui", severity="error", timeout=15)
