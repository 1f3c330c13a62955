"""One run, start to verdict: the runner, the checks, the guard, admission, the Case's
settings, readiness, tasks (and the bundled ones), the fake engine, process supervision and
the warden.

May use: `core.relay`, `core.sandbox`, `core.secrets`, `core.evidence` and the core modules
below them; never a sibling (`jobs`, `planning`, `standins`) or `core.cli`.
"""
