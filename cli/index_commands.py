"""`photosearch index`: scan a folder and bring its collection's rows and vectors up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.export_commands import PresetOption, with_preset
from cli.options import console, settings_for


def index(
    path: Annotated[Path, typer.Argument(help="Folder of photos, scanned recursively.")],
    collection: Annotated[str | None, typer.Option(help="Collection name (default from settings).")] = None,
    captions: Annotated[Path | None, typer.Option(help="JSONL of {image, captions} to attach.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or checkpoint path.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Photos per embedding batch.")] = None,
    workers: Annotated[int | None, typer.Option(help="Decoding worker processes.")] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Zero-shot label set (one a line): probable labels become photo tags.")
    ] = None,
    label_top_k: Annotated[
        int | None, typer.Option(help="Most tags a photo keeps from --labels (default from settings).")
    ] = None,
    preset: PresetOption = None,
    allow_empty: Annotated[
        bool, typer.Option(help="Accept that a folder which held photos is now empty (they are removed).")
    ] = False,
) -> None:
    """Index a folder into a collection: new and changed photos are embedded, renames kept, photos
    gone from this folder removed (the collection's other folders are left as they are). Every input
    is checked before the model loads or any photo is read."""
    from cli.caption_commands import ready_bank
    from cli.context import open_encoder, open_sessions
    from cli.render import print_index_report
    from indexer.inputs import checked_folder, read_captions_file
    from indexer.labels import LabelOptions
    from indexer.pipeline import index_folder

    settings = with_preset(settings_for(model), preset)
    overrides = {"batch_size": batch_size, "workers": workers}
    cfg = settings.indexer.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    root = checked_folder(path)
    caption_rows = read_captions_file(captions) if captions is not None else None
    label_options = LabelOptions.from_settings(labels, cfg, top_k=label_top_k) if labels else None
    encoder = open_encoder(settings)
    report = index_folder(
        root=root,
        collection=collection or settings.collection,
        encoder=encoder,
        sessions=open_sessions(settings),
        index_dir=settings.index_dir,
        captions=caption_rows,
        labels=label_options,
        settings=cfg,
        allow_empty=allow_empty,
    )
    print_index_report(console, report)
    ready_bank(encoder, settings)  # annotation's model captions: embedded once, then cached


def register(app: typer.Typer) -> None:
    app.command()(index)
