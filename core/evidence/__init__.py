"""The run directory, the interface between processes: its pydantic models, the writer
(atomic JSON, the hash-chained trace), the readers (runs, follow), `validate` and its
cross-checks.

May use: `core.settings`, `core.term`, `core.errors`. Everything else reads runs through here.
"""
