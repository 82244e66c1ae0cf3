"""The `animl-ingest` command line: one typer sub-app per command family.

Only typer is imported at start-up: every command module imports the core, rich and boto3 inside its
command, so that `animl-ingest --help` and `--version` print at once (bench/startup.py measures it).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
import typer.main

from animl_ingest_cli import __version__
from animl_ingest_cli.cli import batch as batch_cmd
from animl_ingest_cli.cli import (
    batches,
    deadletter,
    ingest,
    inspect,
    interrupt,
    maintenance,
    queues,
    runbook,
    unpark,
)
from animl_ingest_cli.cli import config as config_cmd
from animl_ingest_cli.errors import EXIT_INTERRUPTED, AnimlError, Interrupted
from animl_ingest_cli.redact import redact

app = typer.Typer(
    name="animl-ingest",
    help="Animl camera-trap image ingest and the operator tools around it. Every command takes "
         "--stage (local, the default, needs no AWS account; dev; prod) and -h for its own help.",
    epilog="\b\nExamples:\n  animl-ingest ingest examples/images\n"
           "  animl-ingest maintenance status --stage dev\n"
           "  animl-ingest ingest --help",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
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


app.command("ingest", help=ingest.HELP, short_help=ingest.SHORT, epilog=ingest.EPILOG)(ingest.ingest)
app.command("inspect", help=inspect.HELP, short_help=inspect.SHORT, epilog=inspect.EPILOG)(inspect.inspect)
app.add_typer(maintenance.app, name="maintenance", short_help=maintenance.SHORT)
app.add_typer(queues.app, name="queues", short_help=queues.SHORT)
app.add_typer(batches.app, name="batches", short_help=batches.SHORT)
app.command("unpark", help=unpark.HELP, short_help=unpark.SHORT, epilog=unpark.EPILOG)(unpark.unpark)
app.add_typer(deadletter.app, name="deadletter", short_help=deadletter.SHORT)
app.add_typer(runbook.app, name="runbook", short_help=runbook.SHORT)
app.command("config", help=config_cmd.HELP, short_help=config_cmd.SHORT,
            epilog=config_cmd.EPILOG)(config_cmd.config)
app.add_typer(batch_cmd.app, name="batch", short_help=batch_cmd.SHORT)

INTERRUPTED = "interrupted: what was done stays done; run the same command again to finish"


def _click_exceptions(click: Any) -> tuple[type[Exception], ...]:
    """Usage errors: typer 0.2x raises those of its own vendored copy of click, not click's."""
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
    except ImportError:
        return (click.ClickException,)
    return (click.ClickException, VendoredClickException)


def main() -> None:
    """Entry point: project errors become one line and an exit code, never a traceback. Ctrl-C
    exits 130 with a message, and a second Ctrl-C while the first is handled never kills it."""
    previous = interrupt.install()
    try:
        _main()
    finally:
        interrupt.restore(previous)


def _flags_without_pydantic(cmd: Any) -> None:
    """typer 0.2x checks every flag's value (even one not given, like the root's --help) through a
    runtime coercion whose module imports pydantic: a tenth of a second of start-up for nothing, a
    flag's value being a bool or None already. Give the boolean flags typer's own pass-through check
    instead (it accepts exactly a bool or None). Private typer names: any other version is left alone."""
    try:
        from typer._click import Context
        from typer._coercion import PassThroughRuntimeParam
    except ImportError:
        return
    params = list(getattr(cmd, "params", []))
    try:  # the help option is made on first use and cached: make it now, with this app's names
        params.append(cmd.get_help_option(Context(cmd, help_option_names=["-h", "--help"])))
    except Exception:  # noqa: BLE001 - an optimisation only
        pass
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if (descriptor is not None and getattr(descriptor, "annotation", None) is bool
                and getattr(param, "_runtime_param", 0) is None):
            param._runtime_param = PassThroughRuntimeParam(annotation=bool,
                                                           parameter_info=descriptor.parameter_info)
    for sub in getattr(cmd, "commands", {}).values():
        _flags_without_pydantic(sub)


def _main() -> None:
    try:
        cmd = typer.main.get_command(app)
        _flags_without_pydantic(cmd)
        rv = cmd.main(standalone_mode=False)  # an Exit(code) comes back as the return value here
    except Interrupted as exc:
        interrupt.stop_on_next()
        print(redact(exc.message), file=sys.stderr)
        sys.exit(exc.exit_code)
    except AnimlError as exc:
        print(f"error: {redact(exc.message)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        interrupt.stop_on_next()
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        import click

        if isinstance(exc, _click_exceptions(click)):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":  # click's or typer's copy: EOF at a prompt
            print("interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        if os.environ.get("ANIML_DEBUG"):
            import traceback

            print(redact(traceback.format_exc()), file=sys.stderr)
        print(f"error: unexpected {type(exc).__name__}: {redact(str(exc))}".splitlines()[0],
              file=sys.stderr)
        sys.exit(1)
    if rv == EXIT_INTERRUPTED and interrupt.seen():
        # typer turns a KeyboardInterrupt the command did not handle into Exit(130), silently
        interrupt.stop_on_next()
        print(INTERRUPTED, file=sys.stderr)
    sys.exit(rv if isinstance(rv, int) else 0)
