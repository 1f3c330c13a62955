"""The planning SOT and its gates: which work items recorded run evidence could unblock.

May use: `core.evidence` and the core modules below it; never a sibling or `core.cli`.
"""
