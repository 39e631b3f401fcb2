"""`photosearch` — index photos, search them, train and evaluate models, serve the API."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from cli import index_commands, label_commands, search_commands, training_commands
from models.errors import PhotoSearchError

app = typer.Typer(help="Private natural-language search over your own photos.", no_args_is_help=True)


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    from models.runtime import tune_allocator

    tune_allocator()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )


for commands in (index_commands, search_commands, label_commands, training_commands):
    commands.register(app)


def main() -> None:
    """The console entry point: a domain error is one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except PhotoSearchError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
