"""`python -m labenv.cli`: the same as the `labenv` command."""

from labenv.cli.main import run

run()
