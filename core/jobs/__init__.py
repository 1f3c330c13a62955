"""Many runs: job.json's model, running a job's trials as `cto-harness run` children, and
reading jobs back with their summary (pass@k).

May use: `core.relay`, `core.sandbox`, `core.secrets`, `core.evidence` and the core modules
below them; never a sibling or `core.cli`.
"""
