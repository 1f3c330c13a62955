"""The footer (tui/widgets/footer.py): at 80 columns each screen keeps its own keys (Runs
and Jobs: `space` to mark, `=` to compare) before the number keys the bar at the top already
names, and help and quit always; Live's `v` says where it goes; and it is not rebuilt when
what it shows stays the same."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import TabbedContent

from core.settings import resolve
from tests.support.pilot import dashboard, until
from tui.app import Dashboard
from tui.screens.detail import RunDetailScreen
from tui.screens.jobs import JobsScreen
from tui.screens.live import LiveScreen
from tui.screens.runs import RunsScreen
from tui.widgets.case_log import CaseLog
from tui.widgets.conversation import ConversationView

pytestmark = pytest.mark.usefixtures("bare_environment")


def shown(app: object) -> list[str]:
    return [str(k.key) for k in app.screen.query("FooterKey")]  # type: ignore[attr-defined]


def width(app: object) -> int:
    return sum(k.outer_size.width for k in app.screen.query("FooterKey"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("key, screen", [("2", RunsScreen), ("4", JobsScreen)])
async def test_at_80_columns_runs_and_jobs_keep_mark_and_compare(
        runs: dict[str, Path], key: str, screen: type) -> None:
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, screen)
                    and {"space", "equals_sign"} <= set(shown(app)))
        assert {"question_mark", "q"} <= set(shown(app)), shown(app)
        assert width(app) <= 80
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=(160, 48)) as pilot:  # wide: the number keys too
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, screen)
                    and {"space", "equals_sign", "1", "2"} <= set(shown(app)))


async def test_the_footer_is_not_rebuilt_when_its_keys_stay_the_same(
        runs: dict[str, Path]) -> None:
    """The bindings change (as each widget mounted below the screen makes them do) and the
    cursor moves, but the keys shown stay the same: so do the key widgets."""
    app = dashboard(runs["passed"].parent)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.push_screen(RunDetailScreen(runs["passed"]))
        app.screen.query_one(TabbedContent).active = "conversation"
        view = app.screen.query_one(ConversationView)
        await until(pilot, lambda: view.loaded_once)
        view.table.focus()
        await until(pilot, lambda: "t" in shown(app))
        keys = list(app.screen.query("FooterKey"))
        for _ in range(5):  # what a widget mounted or a focus move below the screen does
            app.screen.refresh_bindings()
        await pilot.press("j", "k")
        await pilot.pause()
        assert list(app.screen.query("FooterKey")) == keys, "rebuilt with the same keys"
        await pilot.press("escape")  # to the tab bar: the tab's keys go, the footer follows
        await until(pilot, lambda: "t" not in shown(app))


def v_says(app: object) -> str | None:
    """What Live's footer says `v` does (None: no `v` shown)."""
    return next((k.description for k in app.screen.query("FooterKey")  # type: ignore[attr-defined]
                 if k.key == "v"), None)


async def test_live_v_says_where_it_goes(real_runs: dict[str, Path]) -> None:
    """At 80x24 the log and the conversation take turns in one place: `v` says which one it
    brings ("Log" while the conversation is shown, not "Conversation" again). From 120x30,
    where both show, it says where it moves the keys. On a run the real harness made."""
    app = Dashboard(Path("runs"), run_id=real_runs["passed"].name, resolved=resolve())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, LiveScreen)
        await until(pilot, lambda: screen.query(ConversationView)
                    and screen.query_one(ConversationView).loaded_once)
        talk, log_area = screen.query_one("#talk"), screen.query_one("#log-area")
        await until(pilot, lambda: v_says(app) == "Conversation" and log_area.display)
        await pilot.press("v")
        await until(pilot, lambda: talk.display and not log_area.display)
        await until(pilot, lambda: v_says(app) == "Log")
        await pilot.press("v")
        await until(pilot, lambda: log_area.display and v_says(app) == "Conversation")

        await pilot.resize_terminal(160, 48)  # both shown: `v` moves the keys
        await until(pilot, lambda: talk.display and log_area.display)
        await until(pilot, lambda: v_says(app) == "Keys → conversation")
        await pilot.press("v")
        await until(pilot, lambda: screen.focused is not None
                    and talk in screen.focused.ancestors and v_says(app) == "Keys → log")
        await pilot.press("v")
        await until(pilot, lambda: screen.focused is screen.query_one(CaseLog)
                    and v_says(app) == "Keys → conversation")


@pytest.mark.parametrize("run", ["blocked", None])
async def test_live_offers_v_only_once_there_is_a_run_to_show(
        real_runs: dict[str, Path], run: str | None, tmp_path: Path) -> None:
    """Before any run, and on a run blocked before its Case, Live shows the guide in the log's
    place: there is no log or conversation for `v` to bring, `f` to follow or `/` to search,
    so they are not offered (`v` only said so when pressed). A run blocked before its Case,
    made by the real harness, and an empty runs root."""
    app = (Dashboard(Path("runs"), run_id=real_runs[run].name, resolved=resolve()) if run
           else Dashboard(tmp_path, resolved=resolve()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, LiveScreen)
        # the footer follows the guide a refresh later: wait for it (`v` stayed, before)
        await until(pilot, lambda: screen.has_class("-guide") and "q" in shown(app)
                    and not {"v", "f", "slash"} & set(shown(app)))
        await pilot.press("v", "slash")  # nothing to bring or search: nothing moves
        assert screen.has_class("-guide") and not screen.has_class("-talk")
        assert not screen.query_one("#log-search").display
