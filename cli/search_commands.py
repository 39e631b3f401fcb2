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
    from app.services.filters import SearchFilters
    from cli.context import open_service
    from cli.render import print_hits

    service = open_service(settings_for(model))
    filters = SearchFilters.of(collections=collection)
    print_hits(console, text, service.search_text(text, k=k, filters=filters))


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs); logs one line a request."""
    import uvicorn

    from cli.context import check_before_serving
    from cli.key_commands import check_access_before_serving
    from cli.logs import logging_config
    from cli.options import current_settings

    check_before_serving(current_settings())
    check_access_before_serving(current_settings(), host)
    verbose = bool(ctx.find_root().params.get("verbose"))
    # The app logs each request itself (photosearch.access, with its duration); uvicorn's access
    # log would repeat every one. Its start/stop lines stay (uvicorn.error at INFO).
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logging_config(verbose),
        log_level=None,
        access_log=False,
    )


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
