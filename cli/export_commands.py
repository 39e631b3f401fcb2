"""`photosearch export`: the model's towers as ONNX files for CPU inference, and the --preset option
that `index` shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.core.config import Settings
from cli.options import CheckpointOption, ModelOption, console, current_settings
from models.int8_calibration import DEFAULT_CALIBRATION_PHOTOS

PresetOption = Annotated[
    str | None,
    typer.Option(
        help="Test-time preset: fast, balanced or best (default from settings). The index keeps the "
        "vectors of each preset apart."
    ),
]


def with_preset(settings: Settings, preset: str | None) -> Settings:
    """The settings with the test-time preset replaced when a command names one (checked on load)."""
    if preset is None:
        return settings
    inference = settings.inference.model_copy(update={"preset": preset})
    return settings.model_copy(update={"inference": inference})


def export(
    model: ModelOption = None,
    checkpoint: CheckpointOption = None,
    quantize: Annotated[
        str | None,
        typer.Option(help="int8 towers: auto, none, image, text or all (default from settings)."),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of ONNX exports (default: PHOTOSEARCH_INFERENCE__ONNX_CACHE_DIR)."),
    ] = None,
) -> None:
    """Export the model's towers to ONNX (done on first use anyway): files keyed by the checkpoint's
    hash, so a changed checkpoint is exported again and never served from a stale file."""
    from dataclasses import replace

    from models.inference import load_encoder

    settings = current_settings()
    options = replace(
        settings.inference.serving_options(),
        runtime="onnx",
        quantize=quantize or settings.inference.quantize,  # type: ignore[arg-type]  # checked on load
        cache_dir=cache_dir or settings.inference.onnx_cache_dir,
    )
    weights = checkpoint if checkpoint is not None else (None if model else settings.checkpoint)
    encoder = load_encoder(model or settings.model, weights, "cpu", settings.checkpoint_dirs, options)
    sessions = [getattr(encoder, "image_session", None), getattr(encoder, "text_session", None)]
    console.print(f"{encoder.key}: ONNX towers")
    for session in sessions:
        if session is not None:
            size = session.path.stat().st_size / 1e6
            console.print(f"  {session.path} ({size:.1f} MB)", highlight=False)


def calibrate_int8(
    photos: Annotated[
        list[Path],
        typer.Argument(
            help="Folders of photos or captioned data sets (their train splits): what the ranges are "
            "measured on, photos spread evenly over all of them."
        ),
    ],
    model: ModelOption = None,
    checkpoint: CheckpointOption = None,
    count: Annotated[int, typer.Option("--photos", min=1, help="How many photos to measure on.")] = (
        DEFAULT_CALIBRATION_PHOTOS
    ),
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of ONNX exports (default: PHOTOSEARCH_INFERENCE__ONNX_CACHE_DIR)."),
    ] = None,
    seven_bit_by_default: Annotated[
        bool | None,
        typer.Option(
            "--seven-bit-by-default/--no-seven-bit-by-default",
            help="Whether CPUs without VNNI, whose int8 image tower has 7-bit weights, serve it by default "
            "(quantize auto): what `photosearch evaluate --quantize image` on such a CPU measured against "
            "the default-way rule. Unset: not measured, served as on CPUs with VNNI.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Measure the image tower's activation ranges for int8 inference (quantize auto, image or all) and
    keep them beside the checkpoint as CHECKPOINT.int8.json."""
    from models.inference import ServingOptions, load_encoder
    from models.int8_calibration import calibrate as measure
    from models.int8_calibration import calibration_photos
    from models.onnx_export import export_folder, tower_graphs
    from models.onnx_runtime import default_cache_dir, exported

    settings = current_settings()
    chosen = calibration_photos([path for source in photos for path in photo_files(source)], count)
    weights = checkpoint if checkpoint is not None else (None if model else settings.checkpoint)
    options = ServingOptions(runtime="torch", quantize="none")
    encoder = load_encoder(model or settings.model, weights, "cpu", settings.checkpoint_dirs, options)
    folder = export_folder(cache_dir or settings.inference.onnx_cache_dir or default_cache_dir(), encoder)
    (graph,) = [g for g in tower_graphs(encoder) if g.name == "image"]
    target = measure(encoder, chosen, exported(graph, folder), seven_bit_by_default)
    console.print(f"{encoder.key}: int8 ranges of {len(chosen)} photos in {target}", highlight=False)


def photo_files(source: Path) -> list[Path]:
    """A captioned data set's train photos (DIR/captions.jsonl), else the image files under a folder."""
    from models.errors import InvalidInputError
    from models.images import IMAGE_EXTENSIONS
    from models.training.data import load_captioned_photos

    if (source / "captions.jsonl").is_file():
        return [photo.path for photo in load_captioned_photos(source, "train")]
    if not source.is_dir():
        raise InvalidInputError(f"{source} is not a folder of photos")
    found = [p for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not found:
        kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise InvalidInputError(f"no photos under {source} (looked for {kinds})")
    return found


def register(app: typer.Typer) -> None:
    app.command()(export)
    app.command("calibrate-int8")(calibrate_int8)
