"""The production deployment (docs/animl.md) as steps with saved state, usable without the CLI.

`steps` holds the eight steps as data (their text feeds the dry run, the on-screen instructions and
RUNBOOK.md), `state` the saved run of each stage, `runner` the run itself, `backup` the database
export of step 5. `python -m animl_ingest_cli.runbook` prints the steps as RUNBOOK.md shows them.
"""
