"""The only door from the Case to the model: the loopback relay (server), what it lets
through (rules), what it reads from answers (passage) and its ledger.

May use: `core.secrets`, `core.evidence` and the core modules below them.
"""
