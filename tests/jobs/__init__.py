"""Tests of core/jobs: several trials of tasks as one job, and their summary."""
