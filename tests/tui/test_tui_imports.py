"""No import circle in the dashboard: the console script (tui.cli) builds the app, the app
mixes in run_control and opens the screens, and none of them imports back up (the screens
name Dashboard for type hints only, which is no import at run time)."""

from __future__ import annotations

import grimp


def test_no_module_of_tui_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("tui", exclude_type_checking_imports=True)
    circles = sorted(
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.startswith("tui") and imported != importer
        and graph.chain_exists(importer=imported, imported=importer))
    assert circles == [], f"import circles in tui: {circles}"
