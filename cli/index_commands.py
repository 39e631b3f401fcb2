"""`photosearch index`: scan a folder and bring its collection's rows and vectors up to date."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.export_commands import PresetOption, with_preset
from cli.options import console, settings_for
from models.errors import InvalidInputError

if TYPE_CHECKING:
    from app.core.config import Settings
    from indexer.embedding import PhotoSource
    from models.encoder import Encoder


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
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Decode and embed on a Ray cluster: its address (auto, ray://HOST:10001) or 'local' "
            "for a Ray instance on this machine. SQL and index writes stay here.",
        ),
    ] = None,
    ray_cpus: Annotated[
        int, typer.Option(help="CPUs each model replica takes on a Ray cluster without GPUs.")
    ] = 2,
    caption_bank: Annotated[
        bool | None,
        typer.Option(
            "--caption-bank/--no-caption-bank",
            help="Embed the model's caption bank (photo→caption annotation's model captions) after indexing, "
            "once per model and machine; --no-caption-bank leaves it to the first annotation that needs it "
            "or to `photosearch caption-bank` (default: PHOTOSEARCH_INDEXER__CAPTION_BANK, true).",
            show_default=False,
        ),
    ] = None,
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
    check_ray(ray, ray_cpus)
    if ray and settings.inference.quantize == "auto":  # replicas may be GPUs, where int8 does not run
        inference = settings.inference.model_copy(update={"quantize": "none"})
        settings = settings.model_copy(update={"inference": inference})
    sessions = open_sessions(settings)
    encoder = open_encoder(settings, sessions, indexing=True)
    report = index_folder(
        root=root,
        collection=collection or settings.collection,
        encoder=encoder,
        sessions=sessions,
        index_dir=settings.index_dir,
        captions=caption_rows,
        labels=label_options,
        settings=cfg,
        allow_empty=allow_empty,
        photo_source=ray_source(settings, encoder, ray, ray_cpus) if ray else None,
    )
    print_index_report(console, report)
    if settings.indexer.caption_bank if caption_bank is None else caption_bank:
        ready_bank(encoder, settings)  # annotation's model captions: embedded once, then cached


def check_ray(address: str | None, cpus: int) -> None:
    """--ray's inputs, checked before the model loads."""
    if address is None:
        return
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise InvalidInputError("--ray needs Ray: pip install 'photosearch[ray]' (on every node)") from exc
    if cpus < 1:
        raise InvalidInputError(f"--ray-cpus must be at least 1, not {cpus}")


def ray_source(settings: Settings, encoder: Encoder, address: str, cpus: int) -> PhotoSource:
    """Where `--ray` sends the photos: replicas that load the model this run indexes with."""
    from dataclasses import replace

    from indexer.ray_embedding import ModelSpec, RayOptions, RayPhotoSource

    checkpoint = str(settings.checkpoint) if settings.checkpoint else None
    spec = ModelSpec(
        model=settings.model,
        checkpoint=checkpoint,
        checkpoint_dirs=tuple(str(d) for d in settings.checkpoint_dirs),
        options=replace(  # the driver's own choices, as the store made it follow them (as_stored)
            settings.inference.serving_options(),
            preset=getattr(encoder, "preset", None),
            quantize=getattr(encoder, "quantize", "none"),
            lazy_text=True,  # replicas embed photos only
        ),
        key=encoder.key,
    )
    return RayPhotoSource(
        spec, RayOptions(address=None if address == "local" else address, cpus_per_replica=cpus)
    )


def register(app: typer.Typer) -> None:
    app.command()(index)
