"""CLI commands of the clip family: finetune, classify (zero-shot labels) and tag (labels → tags).

Weights for clip models are never downloaded: `--checkpoint` (or PHOTOSEARCH_CHECKPOINT) names an
open_clip weights file, a photosearch checkpoint or `local-dir:/folder`; without it the checkpoint
folders and the Hugging Face cache are searched (models/clip/weights.py lists the places).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from models.clip.zeroshot import DEFAULT_PROMPT

if TYPE_CHECKING:
    from models.encoder import Encoder

console = Console()

ModelOption = Annotated[
    str | None, typer.Option(help="Model name, photosearch checkpoint or local-dir:/folder.")
]
CheckpointOption = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        "--weights",
        help="Weights for --model: open_clip .safetensors/.bin/.pt file, photosearch checkpoint or "
        "local-dir:/folder (default: PHOTOSEARCH_CHECKPOINT, then the usual places).",
    ),
]
DeviceOption = Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N or auto.")]
PromptOption = Annotated[str, typer.Option(help="How a label becomes a sentence ({} = the label).")]


def finetune(
    model: Annotated[str, typer.Option(help="clip model to start from (name, checkpoint or local-dir:).")] = (
        "clip-vit-h-14"
    ),
    data: Annotated[Path, typer.Option(help="Folder with captions.jsonl (train + val splits).")] = Path(
        "../shared/data/flickr8k"
    ),
    checkpoint: CheckpointOption = None,
    out: Annotated[Path | None, typer.Option(help="Checkpoint to write (.safetensors).")] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training photos.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Photos per micro-batch and process.")] = 64,
    accum_steps: Annotated[int, typer.Option(help="Micro-batches per optimiser step.")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 1e-5,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.1,
    warmup_steps: Annotated[int, typer.Option(help="Linear warmup steps before the cosine decay.")] = 100,
    lock_image: Annotated[bool, typer.Option(help="Freeze the image tower.")] = False,
    lock_text: Annotated[bool, typer.Option(help="Freeze the text tower.")] = False,
    grad_checkpointing: Annotated[bool, typer.Option(help="Trade compute for memory.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto (torchrun: one GPU per process).")] = "auto",
    workers: Annotated[int, typer.Option(help="Photo decoding workers per process.")] = 4,
    max_train_photos: Annotated[
        int | None, typer.Option(help="Use only the first N training photos.")
    ] = None,
    max_val_photos: Annotated[
        int | None, typer.Option(help="Measure on only the first N val photos.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Fine-tune a clip model with the CLIP contrastive loss; writes the best epoch's checkpoint.

    Several GPUs: torchrun --nproc_per_node=N -m cli.main finetune ...
    """
    from app.core.config import get_settings
    from models.training.finetune import FinetuneOptions
    from models.training.finetune import finetune as run_finetune

    options = FinetuneOptions(
        epochs=epochs,
        batch_size=batch_size,
        accum_steps=accum_steps,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        lock_image=lock_image,
        lock_text=lock_text,
        grad_checkpointing=grad_checkpointing,
        device=device,
        workers=workers,
        seed=seed,
        max_train_photos=max_train_photos,
        max_val_photos=max_val_photos,
    )
    stem = Path(model).stem if model.endswith(".safetensors") else model.replace("local-dir:", "").strip("/")
    target = out or get_settings().data_dir / "checkpoints" / f"{Path(stem).name}-finetuned.safetensors"
    result = run_finetune(model, data, target, options, weights=checkpoint)
    if os.environ.get("RANK", "0") != "0":
        return
    if result.report is not None:
        console.print(result.report.markdown(f"{target.stem} (epoch {result.best_epoch})"))
    console.print(
        f"checkpoint: {result.checkpoint}  curves: {target.with_suffix('.png')}  "
        f"time: {result.seconds:.0f} s\nuse it: photosearch index PATH --model {result.checkpoint}"
    )


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
    from app.core.errors import InvalidInputError
    from app.services.classify import checked_labels, rank_labels
    from indexer.labels import LabelOptions
    from models.images import ImageDecodeError, decode_photo

    names = list(label or []) + (list(LabelOptions.from_file(labels_file).labels) if labels_file else [])
    try:
        cleaned, prompts = checked_labels(names, prompt, max_chars=1000)
        photo = decode_photo(image)
    except (InvalidInputError, ImageDecodeError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    encoder = _encoder(model, checkpoint, device)
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
    top_k: Annotated[int, typer.Option(help="Tags kept per photo.")] = 3,
    min_probability: Annotated[
        float, typer.Option(help="Keep a tag only at this probability or more.")
    ] = 0.0,
    prompt: PromptOption = DEFAULT_PROMPT,
    model: ModelOption = None,
    checkpoint: CheckpointOption = None,
    device: DeviceOption = None,
) -> None:
    """Tag an indexed collection's photos with their best labels (filter searches with `tags`).

    The same step runs inside indexing when IndexOptions.labels is set; re-running only tags new
    or changed photos, or all of them when the labels, prompt or model changed.
    """
    from app.core.config import get_settings
    from app.storage import repository as repo
    from cli.context import open_sessions
    from indexer.labels import LabelOptions, apply_labels

    settings = get_settings()
    options = LabelOptions.from_file(labels_file, prompt=prompt, top_k=top_k, min_probability=min_probability)
    sessions = open_sessions(settings)
    name = collection or settings.collection
    with sessions() as session:
        found = repo.get_collection(session, name=name)
    if found is None:
        console.print(f"[red]error:[/red] no collection {name!r}: run `photosearch index PATH` first")
        raise typer.Exit(2)
    encoder = _encoder(model, checkpoint, device)
    stats = apply_labels(sessions, collection_id=found.id, encoder=encoder, options=options)
    table = Table(title=f"tagged {stats.photos_tagged} photos of “{name}” with {encoder.key}")
    table.add_column("tag")
    table.add_column("photos", justify="right")
    with sessions() as session:
        for tag_name, count in repo.tag_counts(session, collection_id=found.id):
            table.add_row(tag_name, str(count))
    console.print(table)


def _encoder(model: str | None, checkpoint: str | None, device: str | None) -> Encoder:
    from app.core.config import get_settings
    from models.registry import create_encoder

    settings = get_settings()
    weights = checkpoint if checkpoint is not None else (None if model else settings.checkpoint)
    return create_encoder(model or settings.model, weights, device or settings.device)


def register(app: typer.Typer) -> None:
    """Add the clip-family commands to the photosearch CLI."""
    app.command()(finetune)
    app.command()(classify)
    app.command()(tag)
