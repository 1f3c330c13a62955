"""Every `cto-harness` command: the parser, each command's `register`/`cmd_*`, JSON output and
the schemas. The top of core: nothing in core imports it.
"""
