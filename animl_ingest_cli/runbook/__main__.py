"""Print the steps as RUNBOOK.md shows them (between its runbook-steps markers)."""

from __future__ import annotations

import sys

from animl_ingest_cli.runbook.steps import markdown

if __name__ == "__main__":
    sys.stdout.write(markdown())
