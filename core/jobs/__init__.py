"""Many runs: job.json's model, running a job's trials as `cto-harness run` children, and
reading jobs back with their summary (pass@k).

May use: `core.run` (a trial's outcome classes, never a run in-process), `core.planning`,
`core.standins`, and everything below them; never `core.cli`.
"""
