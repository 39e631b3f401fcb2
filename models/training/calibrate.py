"""Calibrating a trained joint checkpoint for serving: its test-time settings (resolution, mirror
averaging) and a query bank (models/query_bank.py) built from its training data."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from models.caption_bank import sidecar_path, write_sidecar
from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.encoder import Encoder
from models.joint.config import JointConfig, QueryBankConfig, ServingConfig
from models.joint.encoder import build_joint_encoder
from models.query_bank import QueryBank, split_bank_tensors, without_bank
from models.runtime import resolve_device
from models.training.data import TrainingData, as_sets, load_split, sets_label
from models.training.evaluate import encode_photo_files


def build_query_bank(
    encoder: Encoder,
    data: TrainingData,
    split: str = "train",
    options: QueryBankConfig | None = None,
    *,
    seed: int = 0,
    workers: int = 0,
) -> QueryBank:
    """Embed a random sample of a captioned split (photos from their files, through the encoder as
    served: same resolution, same test-time flip) as the bank of typical queries. options: how many
    photos and captions, k and beta (None: QueryBankConfig's defaults)."""
    options = options or QueryBankConfig()
    chosen = load_split(data, split)
    rng = random.Random(seed)
    sample = rng.sample(chosen, min(options.photos, len(chosen)))
    texts = [c for p in chosen for c in p.captions]
    texts = rng.sample(texts, min(options.captions, len(texts)))
    if not sample or not texts:
        raise ValueError(f"split {split!r} of {data} has no captioned photos to build a query bank from")
    images = encode_photo_files(
        encoder, [p.path for p in sample], batch_size=encoder.suggested_batch_size(), workers=workers
    )
    return QueryBank(images, encoder.encode_texts(texts), options.k, options.beta)


def calibrate_checkpoint(
    path: Path,
    data: TrainingData,
    *,
    test_time: ServingConfig | None = None,
    bank_options: QueryBankConfig | None = None,
    keep_bank: bool = False,
    device: str = "auto",
) -> QueryBank | None:
    """Give a trained joint checkpoint its test-time settings and a query bank from `data`'s train split.

    test_time: config "test_time" (resolution, mirror-image averaging, the default preset and precision);
    None keeps the checkpoint's.
    bank_options: how many photos and captions, k, beta; None leaves no bank, unless keep_bank.
    keep_bank: keep the bank the checkpoint holds, as it is: only when photos are embedded as before
    (the bank's photo vectors were embedded that way), so only the default way can change.
    The file is rewritten once, at the end: a failure leaves it as it was. Its digest changes, and so
    does its model key: indexes built with the old file are rebuilt.
    """
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint.config, JointConfig):
        raise ValueError(f"{path} is a {checkpoint.config.family!r} checkpoint; calibrate takes joint ones")
    if keep_bank:
        return _keep_bank(checkpoint, checkpoint.config, test_time, bank_options)
    config = without_bank(checkpoint.config)
    if test_time is not None:
        config = config.replace(test_time=test_time)
    state = split_bank_tensors(checkpoint.state_dict)
    bank = None
    if bank_options is not None:
        model = replace(checkpoint, config=config, state_dict=state)
        encoder = build_joint_encoder(path.stem, config, model, resolve_device(device))
        bank = build_query_bank(encoder, data, "train", bank_options)
        config = config.replace(query_bank=bank.settings(sets_label(data, "train")))
        state.update(bank.tensors())
    save_checkpoint(path, config=config, state_dict=state, info=checkpoint.info)
    return bank


def _keep_bank(
    checkpoint: Checkpoint,
    config: JointConfig,
    test_time: ServingConfig | None,
    bank_options: QueryBankConfig | None,
) -> QueryBank | None:
    """Rewrite the checkpoint (its joint config given) with new test-time choices, its bank untouched."""
    if bank_options is not None:
        raise ValueError("keep the checkpoint's query bank or build a new one, not both")
    stored = config.test_time or ServingConfig()
    wanted = test_time or stored
    embedding = ("image_size", "extra_sizes", "hflip")
    if changed := [k for k in embedding if getattr(wanted, k) != getattr(stored, k)]:
        raise ValueError(
            f"the query bank's photos were embedded with the checkpoint's {', '.join(changed)}: keeping "
            "it takes the same; give a bank (--bank-photos N) to embed photos another way"
        )
    bank = QueryBank.from_checkpoint(config.query_bank, checkpoint.state_dict)
    save_checkpoint(
        checkpoint.path,
        config=config.replace(test_time=wanted),
        state_dict=checkpoint.state_dict,
        info=checkpoint.info,
    )
    return bank


def calibrate_after_training(path: Path, data: TrainingData, config: JointConfig, device: str) -> None:
    """What `photosearch train` does last when the model config asks for test-time settings or a bank."""
    if config.test_time is not None or config.query_bank is not None:
        calibrate_checkpoint(
            path, data, test_time=config.test_time, bank_options=config.query_bank, device=device
        )


def data_attribution(data: TrainingData) -> str:
    """Where the data sets' captions come from: the title line of each one's SOURCE.md when it has one."""
    return " | ".join(_attribution(s.path) for s in as_sets(data))


def _attribution(data: Path) -> str:
    source = (data if data.is_dir() else data.parent) / "SOURCE.md"
    title = next((line for line in _lines(source) if line.strip()), "") if source.is_file() else ""
    name = title.lstrip("# ").strip() or str(data)
    return f"{name}; the data set's SOURCE.md gives its authors and terms"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def write_training_captions(
    checkpoint: Path, data: TrainingData, split: str = "train", attribution: str | None = None
) -> Path:
    """The caption bank sidecar (models/caption_bank.py) beside a trained checkpoint: the captions of
    the split it was trained on, cleaned as training read them, so annotation can offer them."""
    texts = [caption for photo in load_split(data, split) for caption in photo.captions]
    header = {"source": sets_label(data, split), "attribution": attribution or data_attribution(data)}
    return write_sidecar(sidecar_path(checkpoint), texts, header)
