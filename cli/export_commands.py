"""`photosearch export`: the model's towers as ONNX files for CPU inference, and the --preset option
that `index` shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.core.config import Settings
from cli.options import CheckpointOption, ModelOption, console, current_settings

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
        str | None, typer.Option(help="Also write int8 towers: none, text or all (default from settings).")
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


def register(app: typer.Typer) -> None:
    app.command()(export)
