"""Modal dialogs: confirm, type the endpoint (masked), and quit while a run is going."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

from pydantic import SecretStr
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from core.settings import ENDPOINT_VAR, endpoint_shape_problem

STILL_TRUE_POLL_S = 0.25


class ConfirmScreen(ModalScreen[bool | None]):
    """Enter confirms, Escape cancels."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "answer(True)", "Confirm", priority=True),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, question: str,
                 while_true: Callable[[], bool] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.question = question
        self.while_true = while_true
        """Checked a few times a second: once false (the run asked about has ended), the
        dialog closes itself with None instead of answering a question that no longer
        stands."""

    def on_mount(self) -> None:
        if self.while_true is not None:
            self.set_interval(STILL_TRUE_POLL_S, self._still_true)

    def _still_true(self) -> None:
        if self.while_true is not None and not self.while_true() and self.is_current:
            self.dismiss(None)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = self.title_text
            yield Static(self.question, classes="question", markup=False)
            yield Static("Enter confirms · Escape cancels", classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class EndpointScreen(ModalScreen[SecretStr | None]):
    """The endpoint URL, typed masked; it stays in this process's memory only."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "Endpoint"
            yield Static(f"The OpenAI-compatible base URL ({ENDPOINT_VAR}), e.g. "
                         "http://HOST:PORT/v1. Held in memory only and handed to the runs "
                         "this dashboard starts through their environment: never argv, "
                         "never a file.", classes="question")
            yield Input(password=True, placeholder="http://…/v1", id="endpoint")
            yield Label("", id="endpoint-problem")
            yield Static("Enter saves · Escape cancels", classes="hint")

    @on(Input.Submitted, "#endpoint")
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        problem = endpoint_shape_problem(value) if value else "is empty"
        if problem:
            self.query_one("#endpoint-problem", Label).update(f"The endpoint {problem}.")
            return
        self.dismiss(SecretStr(value))

    def action_cancel(self) -> None:
        self.dismiss(None)


QuitChoice = Literal["leave", "cancel", "stay"]


class QuitScreen(ModalScreen[QuitChoice]):
    """Quitting while a run this dashboard started is still going."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "choose('leave')", "Leave it running"),
        Binding("c", "choose('cancel')", "Cancel it"),
        Binding("escape", "choose('stay')", "Stay"),
    ]

    def __init__(self, running: int) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        runs = "a run" if self.running == 1 else f"{self.running} runs"
        with Vertical(classes="dialog") as box:
            box.border_title = "Quit"
            yield Static(f"This dashboard started {runs} still going.", classes="question")
            with Horizontal(classes="buttons"):
                yield Button("Leave it running (l)", id="leave", variant="primary")
                yield Button("Cancel it (c)", id="cancel", variant="error")
                yield Button("Stay (Esc)", id="stay")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)  # type: ignore[arg-type]

    def action_choose(self, choice: QuitChoice) -> None:
        self.dismiss(choice)
