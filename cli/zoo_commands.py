"""Commands of the joint model zoo (issue 3): `embedding-map`, and the extra figures `evaluate` prints
for models with a re-ranker or a caption-only objective."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from models.encoder import Encoder

console = Console()


def embedding_map_command(
    model: Annotated[
        str, typer.Option(help="Model name or checkpoint path (joint family).")
    ] = "joint-default",
    data: Annotated[Path, typer.Option(help="Folder with captions.jsonl.")] = Path("../shared/data/flickr8k"),
    split: Annotated[str, typer.Option(help="Split whose photos are drawn.")] = "val",
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("embedding-map.png"),
    count: Annotated[int, typer.Option(help="How many photos (each with its first caption).")] = 150,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """t-SNE map of photos and captions, matched pairs joined: untrained beside trained, as a PNG."""
    from models.registry import create_encoder
    from models.training.embedding_map import embedding_map

    try:
        written = embedding_map(create_encoder(model, device=device), data, out, split=split, count=count)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"embedding map: {written}")


def print_reranked(encoder: Encoder, data: Path, split: str, report: Path | None) -> None:
    """When the served model re-ranks: text→image figures without and with the re-ranker."""
    if not getattr(encoder, "reranks", False):
        return
    from models.training.data import load_captioned_photos
    from models.training.reranker_train import image_grids, reranked_report

    model = encoder.model  # type: ignore[attr-defined]
    photos = load_captioned_photos(data, split)
    grids = image_grids(model, encoder.preprocess, [p.path for p in photos], encoder.device)
    texts = [c for p in photos for c in p.captions]
    owners = [i for i, p in enumerate(photos) for _ in p.captions]
    import numpy as np

    top_n = encoder.rerank_top_n  # type: ignore[attr-defined]
    plain, reranked = reranked_report(model, grids, texts, np.array(owners), top_n, encoder.device)
    console.print(plain.markdown(f"{encoder.key} dual encoder only"))
    console.print(reranked.markdown(f"{encoder.key} + re-ranker (top {top_n})"))
    if report:
        reranked.write(report.with_name(f"{report.stem}-reranked.json"), f"{encoder.key} + re-ranker")


def calibrate_command(
    checkpoint: Annotated[Path, typer.Argument(help="A trained joint checkpoint (.safetensors), rewritten.")],
    data: Annotated[Path, typer.Option(help="Captioned photos; the bank comes from the train split.")] = Path(
        "../shared/data/flickr8k"
    ),
    image_size: Annotated[
        int | None, typer.Option(help="Resolution photos are embedded at (default: the checkpoint's).")
    ] = None,
    hflip: Annotated[
        bool | None, typer.Option("--hflip/--no-hflip", help="Average each photo with its mirror image.")
    ] = None,
    extra_size: Annotated[
        list[int] | None,
        typer.Option(
            "--extra-size",
            help="A further resolution averaged in, made from the --image-size pixels (repeat for more; "
            "0: none; default: the checkpoint's).",
        ),
    ] = None,
    bank_photos: Annotated[
        int, typer.Option(help="Photos in the query bank, at most the split's (0: no bank).")
    ] = 2000,
    bank_captions: Annotated[
        int, typer.Option(help="Captions in the query bank, at most the split's.")
    ] = 5000,
    k: Annotated[int, typer.Option(help="Nearest bank entries averaged into a hit's offset.")] = 50,
    beta: Annotated[float, typer.Option(help="Weight of the offset.")] = 0.5,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Set how a trained checkpoint embeds photos (resolution, mirror averaging) and give it a query bank
    against hubness; `photosearch train` does this itself when the model config asks for it."""
    from models.checkpoint import CheckpointError, read_checkpoint_config
    from models.query_bank import calibrate_checkpoint

    try:
        test_time = dict(read_checkpoint_config(checkpoint).get("test_time", {}))
    except CheckpointError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    extras = [size for size in extra_size or [] if size]
    for option, sizes in (("--image-size", [image_size]), ("--extra-size", extras)):
        if bad := [size for size in sizes if size is not None and not 32 <= size <= 1024]:
            console.print(f"[red]error:[/red] {option} must be 32..1024 pixels; got {bad[0]}")
            raise typer.Exit(2)
    if image_size is not None:
        test_time["image_size"] = image_size
    if extra_size is not None:  # replaces the checkpoint's; only 0s: none
        test_time.pop("extra_sizes", None)
        if extras:
            test_time["extra_sizes"] = extras
    if hflip is not None:
        test_time["hflip"] = hflip
    options = (
        {"photos": bank_photos, "captions": bank_captions, "k": k, "beta": beta} if bank_photos else None
    )
    try:
        bank = calibrate_checkpoint(
            checkpoint, data, test_time=test_time, bank_options=options, device=device
        )
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    described = "no query bank" if bank is None else f"query bank {bank.settings()}"
    console.print(f"{checkpoint}: test time {test_time}, {described}")


def register(app: typer.Typer) -> None:
    app.command("embedding-map")(embedding_map_command)
    app.command("calibrate")(calibrate_command)
