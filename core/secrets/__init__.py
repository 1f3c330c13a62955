"""Keeping the secret endpoint out of everything: its recognisable forms, the matcher and the
streaming redactor, the leak scan of a run, and the hardening of the process that holds it.

May use: `core.evidence` and the core modules below it.
"""
