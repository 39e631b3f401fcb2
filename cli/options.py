"""Options and helpers shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from app.core.config import Settings
from models.encoder import Encoder
from models.errors import InvalidInputError

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


def current_settings() -> Settings:
    """The settings from the environment; a value that does not parse is named by its variable."""
    from pydantic import ValidationError

    from app.core.config import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"PHOTOSEARCH_{'__'.join(str(part).upper() for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidInputError(f"invalid setting {problems}") from exc


def settings_for(model: str | None = None) -> Settings:
    """The settings, with the model replaced when a command names one."""
    settings = current_settings()
    return settings.model_copy(update={"model": model}) if model else settings


def encoder_for(model: str | None, checkpoint: str | None, device: str | None) -> Encoder:
    from models.inference import load_encoder

    settings = current_settings()
    weights = checkpoint if checkpoint is not None else (None if model else settings.checkpoint)
    return load_encoder(
        model or settings.model,
        weights,
        device or settings.device,
        settings.checkpoint_dirs,
        settings.inference.serving_options(),
    )
