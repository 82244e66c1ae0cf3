from __future__ import annotations

from animl_ingest_cli.cli import main

main()
