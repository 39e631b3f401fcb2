"""A tiny joint model (untrained, scratch CNN + bag of words) saved as a real checkpoint, with or
without a caption bank sidecar beside it: annotation tests run through the real loading path in
seconds. Its scores mean nothing; tests check what is computed from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.caption_bank import sidecar_path, write_sidecar
from models.checkpoint import save_checkpoint
from models.encoder import Encoder
from models.joint.model import JointModel
from models.joint.vocab import build_vocab
from models.query_bank import QueryBank, attach_query_bank
from models.registry import create_encoder
from tests.builders.tiny_models import tiny_config

BANK_TEXTS = [
    "a dog runs across the grass",
    "a black dog jumps over a log",
    "two children play in the sand",
    "a man rides a bicycle down the street",
    "a girl in a red dress climbs the stairs",
    "a surfer rides a big wave",
    "people walk through a busy market",
    "a brown dog swims in a lake",
]


def tiny_checkpoint(
    folder: Path,
    name: str = "tiny-banked",
    texts: list[str] | None = None,
    query_bank: bool = False,
    minilm: bool = False,
) -> Path:
    """An untrained tiny joint checkpoint (seeded, so the same weights each time), and its sidecar
    of `texts` (None: BANK_TEXTS; []: no sidecar). query_bank: give it a query bank of random unit
    vectors, so that hits are ranked by cosine minus a hubness offset. minilm: its text tower is the
    pretrained MiniLM sentence encoder (frozen; exported to ONNX like a shipped model's) instead of a
    bag of words over the captions' vocabulary (which stays on PyTorch)."""
    import torch

    texts = BANK_TEXTS if texts is None else texts
    torch.manual_seed(0)
    if minilm:
        config = tiny_config("bow", text_tower={"type": "minilm", "max_tokens": 16}).replace(name=name)
    else:
        config = tiny_config("bow").replace(name=name)
        vocab = build_vocab([*BANK_TEXTS, *texts] * 2)
        config = config.replace(text_tower=config.text_tower.model_copy(update={"vocab": tuple(vocab)}))
    model = JointModel(config).eval()
    path = save_checkpoint(folder / f"{name}.safetensors", config=config, state_dict=model.checkpoint_state())
    if query_bank:
        rng = np.random.default_rng(0)
        images, bank_texts = (unit_rows(rng.normal(size=(n, config.embed_dim))) for n in (20, 30))
        attach_query_bank(path, QueryBank(images, bank_texts, k=5), source="tests")
    if texts:
        write_sidecar(sidecar_path(path), texts, {"source": "tests", "attribution": "written for the tests"})
    return path


def unit_rows(values: np.ndarray) -> np.ndarray:
    return (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32)


def tiny_encoder(folder: Path, texts: list[str] | None = None, query_bank: bool = False) -> Encoder:
    """The tiny model loaded from its checkpoint file, as the server loads any model."""
    folder.mkdir(parents=True, exist_ok=True)
    return create_encoder(str(tiny_checkpoint(folder, texts=texts, query_bank=query_bank)), device="cpu")
