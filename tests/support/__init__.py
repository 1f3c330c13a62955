"""Helpers shared by the test packages (never tests themselves): the harness as a process,
run-directory fixtures, secret forms, sandbox probes and the dashboard's pilot helpers. One
place, so that no test module imports another."""
