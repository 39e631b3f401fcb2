"""A model config of either family, parsed from JSON by its "family" key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.clip.config import ClipConfig
from models.joint.config import JointConfig
from models.schema import ModelConfigError

ModelConfig = JointConfig | ClipConfig
FAMILIES: dict[str, type[JointConfig] | type[ClipConfig]] = {"joint": JointConfig, "clip": ClipConfig}


def parse_model_config(data: Mapping[str, Any], source: str) -> ModelConfig:
    """A config dict (a JSON file's, or a checkpoint's metadata) → its family's typed config."""
    family = data["family"] if isinstance(data, Mapping) and "family" in data else None
    if family not in FAMILIES:
        raise ModelConfigError(f"{source}: unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[str(family)].parse(data, source)


def read_model_config(path: Path) -> ModelConfig:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelConfigError(f"{path}: not JSON ({exc})") from exc
    return parse_model_config(data, str(path))
