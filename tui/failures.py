"""One place where a failed worker becomes a message on screen instead of a crash."""

from __future__ import annotations

from textual import on
from textual.worker import Worker, WorkerState


class ReportsWorkerErrors:
    """Mixed into the app and each screen: their workers run with `exit_on_error=False`,
    and a failure is shown as an error notification naming the worker."""

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error, app = event.worker.error, event.worker.node.app
            redact = getattr(app, "redact", str)
            app.notify(redact(f"{event.worker.name or event.worker.group} failed: "
                              f"{type(error).__name__}: {error}"),
                       severity="error", timeout=8)
