"""Zero-shot labels with any model: `classify` one photo, `tag` an indexed collection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.options import CheckpointOption, DeviceOption, ModelOption, PromptOption, console, encoder_for
from models.zero_shot import DEFAULT_PROMPT


def classify(
    image: Annotated[Path, typer.Argument(help="Photo file to label.")],
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="A candidate label; repeat.")
    ] = None,
    labels_file: Annotated[Path | None, typer.Option(help="Labels, one a line.")] = None,
    prompt: PromptOption = DEFAULT_PROMPT,
    model: ModelOption = None,
    checkpoint: CheckpointOption = None,
    device: DeviceOption = None,
) -> None:
    """Zero-shot: the probability of each label for one photo, most probable first."""
    from app.services.classify import checked_labels, rank_labels
    from indexer.labels import read_label_file
    from models.errors import InvalidInputError
    from models.images import decode_photo

    # Domain errors (a bad label file, an undecodable photo) are one line and exit 2 in cli.main.
    try:
        names = list(label or []) + (read_label_file(labels_file) if labels_file else [])
        cleaned, prompts = checked_labels(names, prompt, max_chars=1000)
        photo = decode_photo(image)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {image}: {exc.strerror or exc}") from exc
    encoder = encoder_for(model, checkpoint, device)
    scores = rank_labels(
        encoder, encoder.encode_images([photo.image])[0], cleaned, encoder.encode_texts(prompts)
    )
    table = Table(title=f"{image.name} — {encoder.key}")
    for column in ("label", "probability", "cosine"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for score in scores:
        table.add_row(score.label, f"{score.probability:.3f}", f"{score.score:.3f}")
    console.print(table)


def tag(
    labels_file: Annotated[Path, typer.Argument(help="Labels, one a line (or a JSON list).")],
    collection: Annotated[
        str | None, typer.Option(help="Indexed collection (default from settings).")
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(help="Most tags a photo keeps (default: indexer.label_top_k).")
    ] = None,
    min_probability: Annotated[
        float | None,
        typer.Option(
            help="Keep a tag only at this probability or more (default: indexer.label_min_probability)."
        ),
    ] = None,
    prompt: PromptOption = DEFAULT_PROMPT,
    model: ModelOption = None,
    checkpoint: CheckpointOption = None,
    device: DeviceOption = None,
) -> None:
    """Tag an indexed collection's photos with their best labels (filter searches with `tags`).

    The same rule runs inside `index --labels` (the same settings); re-running only tags new or
    changed photos, or all of them when the labels, prompt, rule or model changed.
    """
    from app.core.config import get_settings
    from app.storage import repository as repo
    from cli.context import open_sessions
    from indexer.labels import LabelOptions, apply_labels
    from models.errors import NotFoundError

    settings = get_settings()
    options = LabelOptions.from_settings(
        labels_file, settings.indexer, top_k=top_k, min_probability=min_probability, prompt=prompt
    )
    sessions = open_sessions(settings)
    name = collection or settings.collection
    with sessions() as session:
        found = repo.get_collection(session, name=name)
    if found is None:
        raise NotFoundError(f"no collection {name!r}: run `photosearch index PATH` first")
    encoder = encoder_for(model, checkpoint, device)
    stats = apply_labels(sessions, collection_id=found.id, encoder=encoder, options=options)
    with sessions() as session:
        counts = repo.tag_counts(session, collection_id=found.id)
    _print_tag_counts(f"tagged {stats.photos_tagged} photos of “{name}” with {encoder.key}", counts)


def _print_tag_counts(title: str, counts: list[tuple[str, int]]) -> None:
    table = Table(title=title)
    table.add_column("tag")
    table.add_column("photos", justify="right")
    for tag_name, count in counts:
        table.add_row(tag_name, str(count))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(classify)
    app.command()(tag)
