"""`photosearch annotate` (the captions that best describe a photo) and `photosearch caption-bank`
(prepare the model's caption bank ahead, so the server never embeds it on a request)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import console, settings_for
from models.errors import InvalidInputError

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.services.captions import CaptionHit, CaptionService, CaptionSource
    from models.caption_bank import CaptionBank
    from models.encoder import Encoder


def annotate(
    photo_id: Annotated[int | None, typer.Argument(help="An indexed photo's id (or use --image).")] = None,
    image: Annotated[Path | None, typer.Option(help="Annotate this image file instead.")] = None,
    k: Annotated[int, typer.Option("-k", help="How many captions.")] = 5,
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="collection (captions attached when indexing) or model (its caption bank); repeatable."
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the API's AnnotateResponse.")] = False,
    model: Annotated[str | None, typer.Option(help="Model name or checkpoint path.")] = None,
) -> None:
    """The captions that best describe a photo, from the collection's captions and the model's caption
    bank, best first, through the same service code as POST /v1/annotate."""
    from app.services.query_vectors import ImageQuery
    from cli.search_commands import image_query

    if (photo_id is None) == (image is None):
        raise InvalidInputError("give either a PHOTO_ID or --image PATH, not both or neither")
    sources = checked_sources(source)
    query = image_query(image) if image is not None else ImageQuery(photo_id=photo_id)
    service = open_caption_service(settings_for(model))
    hits = service.annotate(query, k=k, sources=sources)
    if json_output:
        from app.schemas import AnnotateResponse, AnnotationPublic

        response = AnnotateResponse(
            model=service.model_key, captions=[AnnotationPublic.from_hit(h) for h in hits]
        )
        typer.echo(response.model_dump_json(indent=2))
    else:
        print_captions(str(image) if image is not None else f"photo {photo_id}", hits)


def checked_sources(given: list[str] | None) -> tuple[CaptionSource, ...]:
    """The --source values, each once; both when none is given."""
    from app.services.captions import ALL_SOURCES

    chosen = [s for s in ALL_SOURCES if s in (given or ALL_SOURCES)]
    wrong = [s for s in given or [] if s not in ALL_SOURCES]
    if wrong:
        raise InvalidInputError(f"--source {wrong[0]!r}: use collection or model")
    return tuple(chosen)


def open_caption_service(settings: Settings) -> CaptionService:
    """The service POST /v1/annotate uses; the caption bank is made ready first (with a progress bar)."""
    from app.services.captions import CaptionService
    from app.services.model_captions import ModelCaptions
    from cli.context import open_service

    search = open_service(settings)
    bank = ModelCaptions(search.encoder, settings.caches, search.gate, wait_s=float("inf"))
    bank.preload()
    if bank.available and not bank.loaded:
        ready_bank(search.encoder, settings)
        bank.preload()
    return CaptionService(search, bank)


def print_captions(title: str, hits: list[CaptionHit]) -> None:
    from rich.table import Table

    table = Table(title=title)
    ranked = any(h.rank_score is not None for h in hits)
    for column in ("#", "score", *(["rank"] if ranked else []), "source", "caption", "photo"):
        table.add_column(column, overflow="fold")
    for position, hit in enumerate(hits, start=1):
        rank = [f"{hit.rank_score:.3f}" if hit.rank_score is not None else ""] if ranked else []
        photo = str(hit.photo_id) if hit.photo_id is not None else ""
        table.add_row(str(position), f"{hit.score:.3f}", *rank, hit.source, hit.text, photo)
    console.print(table)


def ready_bank(encoder: Encoder, settings: Settings) -> CaptionBank | None:
    """The model's caption bank from the cache, or embedded now with a progress bar (once: it is
    cached under the data folder); None when the model has none."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from models.caption_bank import prepare_caption_bank

    bar = Progress(
        TextColumn("caption bank (once)"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task("embed", total=None)
        return prepare_caption_bank(
            encoder, settings.caches, lambda done, total: bar.update(task, completed=done, total=total)
        )


def caption_bank(
    model: Annotated[str | None, typer.Option(help="Model name or checkpoint path.")] = None,
) -> None:
    """Embed the model's caption bank (its training captions) now and cache it, so that annotation
    never waits for it; a model without one says so."""
    from cli.context import open_encoder, open_sessions, prepare_data_dir

    settings = settings_for(model)
    prepare_data_dir(settings)
    encoder = open_encoder(settings, open_sessions(settings))  # the key the server will serve
    bank = ready_bank(encoder, settings)
    if bank is None:
        console.print(f"model {encoder.key} has no caption bank: annotation uses collection captions only")
    else:
        console.print(f"caption bank of {encoder.key}: {len(bank):,} captions ready")


def register(app: typer.Typer) -> None:
    app.command()(annotate)
    app.command(name="caption-bank")(caption_bank)
