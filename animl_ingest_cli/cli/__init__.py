"""The `animl-ingest` command line: one typer sub-app per command family."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from animl_ingest_cli import __version__
from animl_ingest_cli.cli import batch as batch_cmd
from animl_ingest_cli.cli import batches, deadletter, ingest, inspect, maintenance, queues, runbook, unpark
from animl_ingest_cli.cli import config as config_cmd
from animl_ingest_cli.errors import EXIT_INTERRUPTED, AnimlError
from animl_ingest_cli.redact import redact

app = typer.Typer(
    name="animl-ingest",
    help="Animl camera-trap image ingest and the operator tools around it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"animl-ingest {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Animl camera-trap image ingest and the operator tools around it."""


app.command("ingest", help=ingest.HELP)(ingest.ingest)
app.command("inspect", help=inspect.HELP)(inspect.inspect)
app.add_typer(maintenance.app, name="maintenance")
app.add_typer(queues.app, name="queues")
app.add_typer(batches.app, name="batches")
app.command("unpark", help=unpark.HELP)(unpark.unpark)
app.add_typer(deadletter.app, name="deadletter")
app.add_typer(runbook.app, name="runbook")
app.command("config", help=config_cmd.HELP)(config_cmd.config)
app.add_typer(batch_cmd.app, name="batch")


def _click_exceptions(click: Any) -> tuple[type[Exception], ...]:
    """Usage errors: typer 0.2x raises those of its own vendored copy of click, not click's."""
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
    except ImportError:
        return (click.ClickException,)
    return (click.ClickException, VendoredClickException)


def main() -> None:
    """Entry point: project errors become one line and an exit code, never a traceback."""
    try:
        rv = app(standalone_mode=False)  # an Exit(code) comes back as the return value here
    except AnimlError as exc:
        print(f"error: {redact(exc.message)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        import click

        if isinstance(exc, click.exceptions.Abort):
            print("interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        if isinstance(exc, _click_exceptions(click)):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if os.environ.get("ANIML_DEBUG"):
            import traceback

            print(redact(traceback.format_exc()), file=sys.stderr)
        print(f"error: unexpected {type(exc).__name__}: {redact(str(exc))}".splitlines()[0],
              file=sys.stderr)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
