"""`photosearch` — index photos, search them, train and evaluate models, serve the API."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

app = typer.Typer(help="Private natural-language search over your own photos.", no_args_is_help=True)
console = Console()


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    from models.runtime import tune_allocator

    tune_allocator()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )


@app.command()
def train(
    model: Annotated[str, typer.Option(help="Registered model config to train.")] = "joint-default",
    data: Annotated[Path, typer.Option(help="Folder with captions.jsonl (train + val splits).")] = Path(
        "../shared/data/flickr8k"
    ),
    out: Annotated[Path | None, typer.Option(help="Checkpoint to write (.safetensors).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the config's epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the config's batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Override the learning rate.")] = None,
    loss: Annotated[str | None, typer.Option(help="infonce | vse_hardest | triplet_shifted | cosine")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    resume: Annotated[
        Path | None, typer.Option(help="Carry on from the .resume.pt written beside --out after each epoch.")
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Start from this trained checkpoint of the same model config.")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Override the training resolution.")] = None,
    crop_seed: Annotated[
        int | None, typer.Option(help="Seed of the random-crop training views (another: unseen crops).")
    ] = None,
) -> None:
    """Train a joint model on captioned photos; writes a checkpoint, its curves PNG and val figures."""
    from app.core.config import get_settings
    from models.registry import load_model_config, resolve_device
    from models.training.train import TrainOptions, train_joint

    settings = get_settings()
    config = load_model_config(model)
    if image_size is not None:
        config["preprocess"] = {**config.get("preprocess", {}), "image_size": image_size}
    opts = TrainOptions.from_config(
        config,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        loss=loss,
        seed=seed,
        device=str(resolve_device(device)),
        cache_dir=settings.data_dir / "cache",
        init=init,
        crop_seed=crop_seed,
    )
    target = out or settings.data_dir / "checkpoints" / f"{model}.safetensors"
    result = train_joint(config, data, target, opts, resume=resume)
    console.print(result.report.markdown(f"{model} (epoch {result.best_epoch})"))
    console.print(
        f"checkpoint: {result.checkpoint}  curves: {result.checkpoint.with_suffix('.png')}  "
        f"time: {result.seconds:.0f} s"
    )


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Model name or checkpoint path.")] = "joint-default",
    data: Annotated[Path, typer.Option(help="Folder with captions.jsonl.")] = Path("../shared/data/flickr8k"),
    split: Annotated[str, typer.Option(help="Split to measure (the whole split is the gallery).")] = "val",
    report: Annotated[Path | None, typer.Option(help="Write JSON here (and .md beside it).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """R@1/5/10 and median rank, text→image and image→text, over a whole split."""
    from models.registry import create_encoder
    from models.training.evaluate import encoder_reports

    encoder = create_encoder(model, device=device)
    reports = encoder_reports(encoder, data, split)
    result = reports.get("normalised", reports["cosine"])  # ranked as the service ranks
    if "normalised" in reports:
        console.print(reports["cosine"].markdown(f"{encoder.key} plain cosine"))
        console.print(result.markdown(f"{encoder.key} with its query bank (as served)"))
        if report:
            reports["cosine"].write(report.with_name(f"{report.stem}-cosine.json"), f"{encoder.key} cosine")
    else:
        console.print(result.markdown(encoder.key))
    if report:
        result.write(report, encoder.key)
        console.print(f"report: {report} and {report.with_suffix('.md')}")
    from cli.zoo_commands import print_reranked  # with and without a re-ranker, when the model has one

    print_reranked(encoder, data, split, report)


@app.command()
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
    settings = _settings(model)
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


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What the photo shows.")],
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 10,
    collection: Annotated[list[str] | None, typer.Option(help="Only these collections.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or checkpoint path.")] = None,
) -> None:
    """Search from the terminal, through the same service code as the API."""
    from app.core.errors import PhotoSearchError
    from cli.context import open_service
    from cli.render import print_hits

    service = open_service(_settings(model))
    try:
        hits = service.search_text(text, k=k, collections=collection)
    except PhotoSearchError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    print_hits(console, text, hits)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")


@app.command()
def samples(
    dest: Annotated[Path, typer.Argument(help="Folder to copy them into.")] = Path("data/samples"),
) -> None:
    """Copy public-domain sample photos (shipped with scikit-image) into a folder to try photosearch on."""
    from cli.samples import copy_samples

    copied = copy_samples(dest)
    console.print(f"{len(copied)} sample photos in {dest}")


def _settings(model: str | None = None):  # type: ignore[no-untyped-def]
    from app.core.config import get_settings

    settings = get_settings()
    return settings.model_copy(update={"model": model}) if model else settings


from cli.clip_commands import register as _register_clip_commands  # noqa: E402 - clip family (issue 4)

_register_clip_commands(app)

from cli.zoo_commands import register as _register_zoo_commands  # noqa: E402 - joint model zoo (issue 3)

_register_zoo_commands(app)

if __name__ == "__main__":
    app()
