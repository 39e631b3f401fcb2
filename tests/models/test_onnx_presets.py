"""Test-time presets of the joint family: what each one runs, and that the model key keeps the vectors of
different presets apart while the shipped setting keeps the key it always had."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models.encoder import Encoder
from models.errors import InvalidInputError
from models.inference import ServingOptions, serve_encoder
from models.joint.config import DEFAULT_PRESET, PRESETS, default_preset
from tests.builders.photos import SHARED, shared_rows
from tests.models.test_model_configs import REFERENCE


@pytest.fixture
def preset_encoder(encoder: Encoder) -> Encoder:
    """The session's default encoder, given back with its shipped setting after the test."""
    yield encoder
    encoder.apply_preset("best")  # type: ignore[attr-defined]


def served(encoder: Encoder) -> tuple[int, bool, list[int]]:
    return encoder.preprocess.image_size, encoder.hflip, encoder.extra_sizes  # type: ignore[attr-defined]


def test_each_preset_of_the_default_model(preset_encoder: Encoder) -> None:
    encoder = preset_encoder
    shipped_key = str(np.load(REFERENCE)["joint-default.key"])
    assert DEFAULT_PRESET in PRESETS and encoder.key == shipped_key
    expected = {"fast": (256, False, []), "balanced": (288, True, []), "best": (288, True, [256])}
    keys = {}
    for preset in PRESETS:
        encoder.apply_preset(preset)  # type: ignore[attr-defined]
        assert served(encoder) == expected[preset]
        keys[preset] = encoder.key
    # best is the shipped setting: the key indexes were built under; the others are kept apart
    assert keys["best"] == shipped_key
    assert keys["fast"] == f"{shipped_key}+fast" and keys["balanced"] == f"{shipped_key}+balanced"


def test_presets_embed_differently_and_the_default_as_shipped(preset_encoder: Encoder) -> None:
    encoder = preset_encoder
    photo = [Image.open(SHARED / shared_rows("val", 1)[0]["image"]).convert("RGB")]
    vectors = {}
    for preset in PRESETS:
        encoder.apply_preset(preset)  # type: ignore[attr-defined]
        vectors[preset] = encoder.encode_images(photo)[0]
    encoder.apply_preset(None)  # type: ignore[attr-defined]  # the checkpoint's own default (fp32)
    default = default_preset(encoder.model.config, int8=False)  # type: ignore[attr-defined]
    assert encoder.preset == default == "balanced"  # type: ignore[attr-defined]
    assert np.allclose(encoder.encode_images(photo)[0], vectors[default], atol=1e-6)
    assert 0.9 < float(vectors["fast"] @ vectors["best"]) < 0.9999  # the same photo, seen another way


def test_an_unknown_preset_names_the_choices(encoder: Encoder) -> None:
    with pytest.raises(
        InvalidInputError, match=r"unknown preset 'quick': use one of \['fast', 'balanced', 'best'\]"
    ):
        serve_encoder(encoder, ServingOptions(runtime="torch", preset="quick"))  # type: ignore[arg-type]
