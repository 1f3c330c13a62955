"""Where the Case and everything that runs its code runs: bubblewrap (bwrap), the folders
it shows (paths), its first process (init), a run's sandboxes (run) and the private HOME.

May use: `core.secrets`, `core.evidence` and the core modules below them.
"""
