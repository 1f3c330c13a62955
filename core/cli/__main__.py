"""`python -m core.cli`: the same as the `cto-harness` console script."""

from core.cli.main import entry

entry()
