"""Commands that measure trained models: retrieval figures and embedding maps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import console, current_settings
from cli.training_commands import DataListOption, DataOption, DeviceChoice, training_data, training_data_sets
from models.encoder import Encoder
from models.errors import InvalidInputError


def open_model(model: str, device: str, preset: str | None = None, quantize: str = "none") -> Encoder:
    """A model by name or checkpoint path, its weights searched where the settings say; with a test-time
    preset (joint family), photos are embedded as that preset serves them. In fp32 through PyTorch (equal
    to ONNX Runtime within 1e-6, and no export to wait for); with int8 towers (quantize image, text, all
    or auto) through ONNX Runtime, as a CPU server runs them."""
    from models.inference import ServingOptions, load_encoder

    settings = current_settings()
    options = ServingOptions(
        runtime="torch" if quantize == "none" else "onnx",
        preset=preset,  # type: ignore[arg-type]  # checked by load_encoder
        quantize=quantize,  # type: ignore[arg-type]
        cache_dir=settings.inference.onnx_cache_dir,
    )
    return load_encoder(model, None, device, settings.checkpoint_dirs, options)


def evaluate(
    model: Annotated[str, typer.Option(help="Model name or checkpoint path.")] = "joint-default",
    data: DataListOption = None,
    split: Annotated[str, typer.Option(help="Split to measure (the whole split is the gallery).")] = "val",
    report: Annotated[
        Path | None,
        typer.Option(help="Write JSON here (and .md beside it); with several --data, one file per set."),
    ] = None,
    device: DeviceChoice = "auto",
    preset: Annotated[
        str | None,
        typer.Option(
            help="Test-time preset photos are embedded with: fast, balanced, best (default: the model's "
            "own, as a server serves it)."
        ),
    ] = None,
    quantize: Annotated[
        str,
        typer.Option(help="int8 towers through ONNX Runtime: none (fp32), auto, image, text or all."),
    ] = "none",
) -> None:
    """R@1/5/10 and median rank, text→image and image→text, over a whole split of each --data set, each
    set its own gallery."""
    sets = training_data_sets(data)
    encoder = open_model(model, device, preset, quantize)
    for data_set in sets:
        if len(sets) > 1:
            console.print(f"[bold]{data_set.name}[/bold] {split}: {data_set.path}")
        path = report.with_stem(f"{report.stem}-{data_set.name}") if report and len(sets) > 1 else report
        evaluate_set(encoder, data_set.path, split, path)


def evaluate_set(encoder: Encoder, folder: Path, split: str, report: Path | None) -> None:
    """One data set's split: plain cosine and, with a query bank, as served; the re-ranker when it has one."""
    from models.training.evaluate import encoder_reports

    reports = encoder_reports(encoder, folder, split)
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
    print_reranked(encoder, folder, split, report)


def print_reranked(encoder: Encoder, data: Path, split: str, report: Path | None) -> None:
    """When the served model re-ranks: text→image figures without and with the re-ranker."""
    if encoder.reranker is None:
        return
    import numpy as np

    from models.training.data import load_captioned_photos
    from models.training.reranker_train import image_grids, reranked_report

    model = encoder.model  # type: ignore[attr-defined]
    photos = load_captioned_photos(data, split)
    grids = image_grids(model, encoder.preprocess, [p.path for p in photos], encoder.device)
    texts = [c for p in photos for c in p.captions]
    owners = np.array([i for i, p in enumerate(photos) for _ in p.captions])
    top_n = encoder.reranker.top_n
    plain, reranked = reranked_report(model, grids, texts, owners, top_n, encoder.device)
    console.print(plain.markdown(f"{encoder.key} dual encoder only"))
    console.print(reranked.markdown(f"{encoder.key} + re-ranker (top {top_n})"))
    if report:
        reranked.write(report.with_name(f"{report.stem}-reranked.json"), f"{encoder.key} + re-ranker")


def embedding_map_command(
    model: Annotated[
        str, typer.Option(help="Model name or checkpoint path (joint family).")
    ] = "joint-default",
    data: DataOption = None,
    split: Annotated[str, typer.Option(help="Split whose photos are drawn.")] = "val",
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("embedding-map.png"),
    count: Annotated[int, typer.Option(help="How many photos (each with its first caption).")] = 150,
    device: DeviceChoice = "auto",
) -> None:
    """t-SNE map of photos and captions, matched pairs joined: untrained beside trained, as a PNG."""
    from models.training.embedding_map import embedding_map

    folder = training_data(data)
    try:
        written = embedding_map(open_model(model, device), folder, out, split=split, count=count)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    console.print(f"embedding map: {written}")


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
    app.command("embedding-map")(embedding_map_command)
