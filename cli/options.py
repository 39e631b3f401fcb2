"""Options and helpers shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from app.core.config import Settings
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


def settings_for(model: str | None = None) -> Settings:
    """The settings, with the model replaced when a command names one."""
    from app.core.config import get_settings

    settings = get_settings()
    return settings.model_copy(update={"model": model}) if model else settings


def encoder_for(model: str | None, checkpoint: str | None, device: str | None) -> Encoder:
    from app.core.config import get_settings
    from models.registry import create_encoder

    settings = get_settings()
    weights = checkpoint if checkpoint is not None else (None if model else settings.checkpoint)
    return create_encoder(model or settings.model, weights, device or settings.device)
