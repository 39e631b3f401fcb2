"""Calibrating a trained joint checkpoint for serving: its test-time settings (resolution, mirror
averaging) and a query bank (models/query_bank.py) built from its training data."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from models.checkpoint import load_checkpoint, save_checkpoint
from models.encoder import Encoder
from models.joint.encoder import build_joint_encoder
from models.query_bank import QueryBank, split_bank_tensors
from models.runtime import resolve_device
from models.training.data import load_captioned_photos
from models.training.evaluate import encode_photo_files


def build_query_bank(
    encoder: Encoder,
    data: Path,
    split: str = "train",
    *,
    photos: int = 2000,
    captions: int = 5000,
    k: int = 50,
    beta: float = 0.5,
    seed: int = 0,
    workers: int = 0,
) -> QueryBank:
    """Embed a random sample of a captioned split (photos from their files, through the encoder as
    served: same resolution, same test-time flip) as the bank of typical queries."""
    chosen = load_captioned_photos(data, split)
    rng = random.Random(seed)
    sample = rng.sample(chosen, min(photos, len(chosen)))
    texts = [c for p in chosen for c in p.captions]
    texts = rng.sample(texts, min(captions, len(texts)))
    if not sample or not texts:
        raise ValueError(f"split {split!r} of {data} has no captioned photos to build a query bank from")
    images = encode_photo_files(
        encoder, [p.path for p in sample], batch_size=encoder.suggested_batch_size(), workers=workers
    )
    return QueryBank(images, encoder.encode_texts(texts), k, beta)


def calibrate_checkpoint(
    path: Path,
    data: Path,
    *,
    test_time: dict[str, Any] | None = None,
    bank_options: dict[str, Any] | None = None,
    device: str = "auto",
) -> QueryBank | None:
    """Give a trained joint checkpoint its test-time settings and a query bank from `data`'s train split.

    test_time: config "test_time" (resolution, mirror-image averaging); None keeps the checkpoint's.
    bank_options: k, beta, photos, captions (build_query_bank's keywords); None or {} leaves no bank.
    The file is rewritten once, at the end: a failure leaves it as it was. Its photo vectors change, and
    so does its digest: indexes built with the old file are rebuilt.
    """
    checkpoint = load_checkpoint(path)
    if checkpoint.config.get("family") != "joint":
        raise ValueError(
            f"{path} is a {checkpoint.config.get('family')!r} checkpoint; calibrate takes joint ones"
        )
    config = {k: v for k, v in checkpoint.config.items() if k != "query_bank"}
    if test_time is not None:
        config["test_time"] = test_time
    state = split_bank_tensors(checkpoint.state_dict)
    bank = None
    if bank_options:
        model = replace(checkpoint, config=config, state_dict=state)
        encoder = build_joint_encoder(path.stem, config, model, resolve_device(device))
        bank = build_query_bank(encoder, data, "train", **bank_options)
        config["query_bank"] = {**bank.settings(), "source": f"{data.name}:train"}
        state.update(bank.tensors())
    save_checkpoint(path, config=config, state_dict=state, info=checkpoint.info)
    return bank


def calibrate_after_training(path: Path, data: Path, config: dict[str, Any], device: str) -> None:
    """What `photosearch train` does last when the model config asks for test-time settings or a bank."""
    if config.get("test_time") or config.get("query_bank"):
        calibrate_checkpoint(
            path,
            data,
            test_time=config.get("test_time"),
            bank_options=config.get("query_bank"),
            device=device,
        )
