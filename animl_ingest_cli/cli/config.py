"""`animl-ingest config`: every resolved name of a stage and where it came from; `--check` tests them."""

from __future__ import annotations

from typing import Annotated

import typer

from animl_ingest_cli.cli.common import JsonOpt, StageOpt, emit_json, out_console

SHORT = "Every name a stage resolves to; --check tests them."
HELP = ("Show every name the stage resolves to (buckets or local folders, SSM parameters, queues, "
        "where the API key comes from, the audit log) and where each came from: default, ssm, local, "
        "env, secret or missing. The API key itself is never shown.\n\n"
        "With --check, also run the checks `ingest` runs before its first image: parameters readable, "
        "each bucket there, the API URL and key found, and animl-api answering and accepting the key "
        "(a request that creates nothing). Exit 0 when all pass, else the first failure's code: 2 for "
        "configuration (no API key, the key refused), 5 for infrastructure (a missing bucket, an "
        "endpoint that does not answer).")
EPILOG = ("\b\nExamples:\n"
          "  animl-ingest config --stage dev\n"
          "  animl-ingest config --stage prod --check\n"
          "  animl-ingest config --stage dev --json")


def config(
    stage: StageOpt = None,
    check: Annotated[bool, typer.Option("--check",
                                        help="Also run the pre-flight checks (see above).")] = False,
    json_out: JsonOpt = False,
) -> None:
    from rich.table import Table

    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ops.config_report import resolve

    ctx = open_stage(stage)
    settings = resolve(ctx, given_stage=stage)
    if json_out:
        for s in settings:
            emit_json(s.to_dict())
    else:
        table = Table(title=f"config of {ctx.stage}", title_justify="left")
        for col in ("name", "value", "source", "from"):
            table.add_column(col, overflow="fold")
        for s in settings:
            table.add_row(s.name, s.value if s.value is not None else "-", s.source, s.where or "")
        out_console.print(table)
    if check:
        _check(ctx, json_out)


def _check(ctx: object, json_out: bool) -> None:
    from rich.table import Table

    from animl_ingest_cli import preflight

    checks = preflight.run_checks(ctx, probe=True)  # type: ignore[arg-type]
    if json_out:
        for c in checks:
            emit_json(c.to_dict())
    else:
        table = Table(title="checks", title_justify="left")
        for col in ("check", "result", "detail"):
            table.add_column(col, overflow="fold")
        for c in checks:
            table.add_row(c.name, "ok" if c.ok else "FAILED", c.detail)
        out_console.print(table)
    for c in checks:
        if c.error is not None:
            raise c.error
