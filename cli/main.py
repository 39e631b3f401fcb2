"""`photosearch` — index photos, search them, train and evaluate models, serve the API."""

from __future__ import annotations

import logging.config
import sys
from importlib.metadata import version
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from cli import (
    caption_commands,
    evaluation_commands,
    export_commands,
    index_commands,
    key_commands,
    label_commands,
    search_commands,
    training_commands,
)
from cli.logs import hide_library_chatter, logging_config
from models.errors import PhotoSearchError


def error_line(error: PhotoSearchError) -> str:
    """The message on one line: some carry a library's multi-line reason (a driver's "is the server
    running?" hint), and a script reading stderr, or a person, should get one line an error."""
    return " ".join(str(error).split()) or type(error).__name__


def print_error(error: PhotoSearchError) -> None:
    # Made at each call, so it writes to the stderr of the moment (a test runner swaps it);
    # soft_wrap: Rich would otherwise fold the line at the console width (80 columns off a terminal).
    Console(stderr=True, soft_wrap=True).print(
        f"[red]error:[/red] {escape(error_line(error))}", highlight=False
    )


class CommandGroup(TyperGroup):
    """Every command's domain error becomes one line on stderr and exit code 2, here rather than only
    in main(), so that a command run through typer's test runner behaves as the console script does."""

    def invoke(self, ctx: Any) -> Any:  # ctx: the click Context typer vendors (typer._click)
        try:
            return super().invoke(ctx)
        except PhotoSearchError as exc:
            print_error(exc)
            raise typer.Exit(2) from exc


app = typer.Typer(
    cls=CommandGroup, help="Private natural-language search over your own photos.", no_args_is_help=True
)


def _print_version(requested: bool) -> None:
    if requested:
        typer.echo(f"photosearch {version('photosearch')}")
        raise typer.Exit()


@app.callback()
def _setup(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging, other libraries' included.")
    ] = False,
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    hide_library_chatter(verbose)
    logging.config.dictConfig(logging_config(verbose))
    from models.runtime import tune_allocator

    tune_allocator()


for commands in (
    index_commands,
    search_commands,
    caption_commands,
    label_commands,
    training_commands,
    evaluation_commands,
    key_commands,
    export_commands,
):
    commands.register(app)


def main() -> None:
    """The console entry point: a domain error is one line on stderr and exit code 2, never a traceback
    (CommandGroup handles those of commands; this, any raised outside one)."""
    try:
        app()
    except PhotoSearchError as exc:
        print_error(exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
