"""`photosearch index`: scan a folder and bring its collection's rows and vectors up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import console, settings_for


def index(
    path: Annotated[Path, typer.Argument(help="Folder of photos, scanned recursively.")],
    collection: Annotated[str | None, typer.Option(help="Collection name (default from settings).")] = None,
    captions: Annotated[Path | None, typer.Option(help="JSONL of {image, captions} to attach.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or checkpoint path.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Photos per embedding batch.")] = None,
    workers: Annotated[int | None, typer.Option(help="Decoding worker processes.")] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Zero-shot label set (one a line): best labels become photo tags.")
    ] = None,
    label_top_k: Annotated[int, typer.Option(help="Tags kept per photo from --labels.")] = 3,
) -> None:
    """Index a folder: new and changed photos are embedded, renames kept, deletions removed."""
    from cli.context import open_encoder, open_sessions
    from indexer.labels import LabelOptions
    from indexer.pipeline import IndexerError, IndexOptions, index_folder

    if labels is not None and not labels.is_file():
        console.print(f"[red]error:[/red] label file not found: {labels}")
        raise typer.Exit(2)
    settings = settings_for(model)
    encoder = open_encoder(settings)
    sessions = open_sessions(settings)
    cfg = settings.indexer
    options = IndexOptions(
        batch_size=batch_size or cfg.batch_size or encoder.suggested_batch_size(),
        labels=LabelOptions.from_file(labels, top_k=label_top_k) if labels else None,
        workers=cfg.workers if workers is None else workers,
        max_image_pixels=cfg.max_image_pixels,
        flat_max_vectors=cfg.flat_max_vectors,
        hnsw_max_vectors=cfg.hnsw_max_vectors,
    )
    try:
        report = index_folder(
            root=path,
            collection=collection or settings.collection,
            encoder=encoder,
            sessions=sessions,
            index_dir=settings.index_dir,
            captions_file=captions,
            options=options,
        )
    except IndexerError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    from cli.render import print_index_report

    print_index_report(console, report)


def register(app: typer.Typer) -> None:
    app.command()(index)
