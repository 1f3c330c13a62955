"""The footer (tui/widgets/footer.py): at 80 columns each screen keeps its own keys (Runs
and Jobs: `space` to mark, `=` to compare) before the number keys the bar at the top already
names, and help and quit always; and it is not rebuilt when what it shows stays the same."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import TabbedContent

from tests.support.pilot import dashboard, until
from tui.screens.detail import RunDetailScreen
from tui.screens.jobs import JobsScreen
from tui.screens.runs import RunsScreen
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
