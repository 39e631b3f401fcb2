"""Search from the terminal, serve the API, and sample photos to try it on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import console, settings_for
from models.errors import InvalidInputError

if TYPE_CHECKING:
    from app.services.filters import SearchFilters
    from app.services.query_vectors import ImageQuery


def query(
    text: Annotated[str | None, typer.Argument(help="What the photo shows (or use --image).")] = None,
    image: Annotated[
        Path | None, typer.Option(help="Search by example: photos that look like this image file.")
    ] = None,
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 10,
    offset: Annotated[int, typer.Option(help="Skip this many results (the next page).")] = 0,
    collection: Annotated[list[str] | None, typer.Option(help="Only this collection (repeatable).")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Only photos with this tag (repeatable: all).")
    ] = None,
    folder: Annotated[
        list[str] | None, typer.Option(help="Only this folder and below, in its collection (repeatable).")
    ] = None,
    camera: Annotated[
        list[str] | None, typer.Option(help='Only this camera: "make model", make or model (repeatable).')
    ] = None,
    taken_after: Annotated[str | None, typer.Option(help="Taken on or after this ISO date/datetime.")] = None,
    taken_before: Annotated[
        str | None, typer.Option(help="Taken on or before this ISO date/datetime.")
    ] = None,
    min_score: Annotated[float | None, typer.Option(help="Drop hits below this cosine score.")] = None,
    sort: Annotated[str, typer.Option(help="relevance, newest or oldest (by date taken).")] = "relevance",
    dedup: Annotated[
        bool,
        typer.Option("--dedup/--no-dedup", help="Near-identical photos as one hit, listing the others' ids."),
    ] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print the hits as the API's JSON.")] = False,
    thumbnails: Annotated[
        bool, typer.Option(help="Show each photo in the table (coloured text, true-colour terminals).")
    ] = False,
    model: Annotated[str | None, typer.Option(help="Model name or checkpoint path.")] = None,
) -> None:
    """Search from the terminal, through the same service code as the API: by TEXT, or by an example
    photo with --image; the options narrow or order the hits as the API's filters do."""
    from cli.context import open_service
    from cli.render import print_hits, print_hits_json

    if (text is None) == (image is None):
        raise InvalidInputError("give either TEXT to search for or --image PATH, not both or neither")
    filters = checked_filters(  # before the model loads: a typo costs no seconds
        k=k,
        offset=offset,
        collections=collection,
        tags=tag,
        folders=folder,
        cameras=camera,
        taken_after=taken_after,
        taken_before=taken_before,
        min_score=min_score,
        sort=sort,
    )
    example = image_query(image) if image is not None else None
    service = open_service(settings_for(model))
    page = service.page(k, offset)
    if example is not None:
        hits = service.search_image(example, k=page.k, offset=page.offset, filters=filters, dedup=dedup)
    else:
        hits = service.search_text(text or "", k=page.k, offset=page.offset, filters=filters, dedup=dedup)
    if json_output:
        print_hits_json(service.model_key, page, hits)
    else:
        print_hits(console, str(image) if image is not None else text or "", hits, thumbnails)


# The API's field names as this command's options, for naming a bad value.
OPTION_NAMES = {
    "k": "-k",
    "collections": "--collection",
    "tags": "--tag",
    "folders": "--folder",
    "cameras": "--camera",
}


def checked_filters(**fields: object) -> SearchFilters:
    """The filters from the command's options, read by the API's own schema (ISO dates, a date alone
    covering its whole day, the sort orders), so the terminal and the API accept the same values."""
    from pydantic import ValidationError

    from app.schemas import SearchFilterFields

    try:
        return SearchFilterFields.model_validate(fields).filters()
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():  # a date is tried as datetime and as date: one message an option
            field = str(error["loc"][0])
            problems.setdefault(OPTION_NAMES.get(field, "--" + field.replace("_", "-")), error["msg"])
        raise InvalidInputError("; ".join(f"{name}: {msg}" for name, msg in problems.items())) from exc


def image_query(path: Path) -> ImageQuery:
    """The example photo's bytes, checked and decoded by the service as an upload would be."""
    from app.services.query_vectors import ImageQuery

    try:
        return ImageQuery(upload=path.read_bytes())
    except OSError as exc:
        raise InvalidInputError(f"cannot read --image {path}: {exc.strerror or type(exc).__name__}") from exc


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
