"""Search from the terminal, serve the API, and sample photos to try it on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import console, settings_for


def query(
    text: Annotated[str, typer.Argument(help="What the photo shows.")],
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 10,
    collection: Annotated[list[str] | None, typer.Option(help="Only these collections.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or checkpoint path.")] = None,
) -> None:
    """Search from the terminal, through the same service code as the API."""
    from cli.context import open_service
    from cli.render import print_hits
    from models.errors import PhotoSearchError

    service = open_service(settings_for(model))
    try:
        hits = service.search_text(text, k=k, collections=collection)
    except PhotoSearchError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    print_hits(console, text, hits)


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")


def samples(
    dest: Annotated[Path, typer.Argument(help="Folder to copy them into.")] = Path("data/samples"),
) -> None:
    """Copy public-domain sample photos (shipped with scikit-image) into a folder to try photosearch on."""
    from cli.samples import copy_samples

    copied = copy_samples(dest)
    console.print(f"{len(copied)} sample photos in {dest}")


def register(app: typer.Typer) -> None:
    app.command()(query)
    app.command()(serve)
    app.command()(samples)
