"""Issue 22: the dashboard never follows what a Case left. Links in a run's workspace (to a
file holding a secret, to /, to /proc/self/environ) are shown as links in the Files tree,
never entered or opened by the viewer or `o`; a FIFO is named, never waited on. Before
issue 22 the tree expanded a link to / and the viewer showed the linked file in clear."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import DirectoryTree, TabbedContent

from tests.support.pilot import SIZE, dashboard, until
from tests.support.tui_fixtures import FixtureRun, run_id, stage2
from tui.screens.detail import RunDetailScreen
from tui.widgets.file_view import FileView

pytestmark = pytest.mark.usefixtures("bare_environment")


def planted_run(root: Path, secret: Path) -> Path:
    run = FixtureRun(root, run_id(0, 4001))
    run.preflight()
    stage2(run)
    workspace = run.paths.workspace
    workspace.mkdir(exist_ok=True)
    (workspace / "slugify.py").write_text("def slugify(text):\n    return text\n")
    (workspace / "notes").symlink_to(secret)
    (workspace / "root").symlink_to("/")
    (workspace / "environ").symlink_to("/proc/self/environ")
    os.mkfifo(workspace / "pipe")
    return run.paths.root


async def test_files_shows_links_as_links_and_never_opens_them(tmp_path: Path,
                                                               monkeypatch) -> None:
    invented = "shadow-" + os.urandom(8).hex()
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(f"{invented}\n")
    run_dir = planted_run(tmp_path / "runs", secret)
    monkeypatch.setenv("EDITOR", f"cp -t {tmp_path / 'edited'}")
    (tmp_path / "edited").mkdir()
    app = dashboard(run_dir.parent)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.push_screen(RunDetailScreen(run_dir))
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        detail = app.screen
        detail.query_one(TabbedContent).active = "files"
        tree = detail.query_one(DirectoryTree)
        await until(pilot, lambda: any(str(n.label) == "workspace"
                                       for n in tree.root.children))
        node = next(n for n in tree.root.children if str(n.label) == "workspace")
        node.expand()
        await until(pilot, lambda: len(node.children) == 5)
        entries = {str(n.label).split(" → ")[0]: n for n in node.children}
        labels = {name: str(n.label) for name, n in entries.items()}
        assert labels["notes"] == f"notes → {secret}"
        assert labels["root"] == "root → /" and not entries["root"].allow_expand
        assert labels["environ"] == "environ → /proc/self/environ"
        view = detail.query_one("#file-view", FileView)
        for name, said in (("notes", "a symbolic link to"), ("root", "a symbolic link to"),
                           ("environ", "a symbolic link to"), ("pipe", "a FIFO")):
            tree.select_node(entries[name])
            tree.action_select_cursor()
            await until(pilot, lambda said=said: said in str(view.border_subtitle))
            assert view.path is None and view.line_count == 0
            assert "not opened" in str(view.border_subtitle)
            await pilot.press("o")
            await pilot.pause()
        assert not list((tmp_path / "edited").iterdir()), "o opened no linked file"
        tree.select_node(entries["slugify.py"])
        tree.action_select_cursor()
        await until(pilot, lambda: view.line_count == 2)
        assert invented not in "".join(view.line_text(i) for i in range(view.line_count))
