"""What a cluster job asks every Ray node before its first trial, sent by value (cloudpickle's
`register_pickle_by_value`), so it runs on a node that has Ray but not the harness (the head)
and answers there rather than failing to import.

Standard library only, and nothing secret asked or answered: whether the node's Ray runs
with token auth (the node's processes inherit `RAY_AUTH_MODE` from its `ray start`) and
whether it can import the harness's worker side (the `[cluster]` extra there).
"""

from __future__ import annotations

import importlib.util
import os


def node_facts() -> dict[str, object]:
    try:
        harness = importlib.util.find_spec("core.jobs.cluster_worker") is not None
    except ImportError:  # no `core` package there at all
        harness = False
    return {"auth": os.environ.get("RAY_AUTH_MODE", "").strip().lower(), "harness": harness}
