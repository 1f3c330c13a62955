"""What stands in for the user's endpoint and agent, for the demo and the tests: the scripted
OpenAI-compatible endpoint, the demo, a real small model on CPU, the reference Case.

May use: `core.relay`, `core.sandbox`, `core.secrets`, `core.evidence` and the core modules
below them; never a sibling or `core.cli`.
"""
