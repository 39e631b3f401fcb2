"""Record a shipped model's reference vectors (tests/models/test_model_configs.py reads them): its key and
the vectors create_encoder gives for the two val photos and texts the test embeds. Run once, when a model
ships; a shipped model's entry is never re-recorded, since a library indexed with it relies on it (a new
default is another file: the entry of the file it replaces moves to the name that file is kept under).

    python -m tests.models.reference.record joint-lite1-mpnet
"""

from __future__ import annotations

import sys

import numpy as np

from models.registry import create_encoder
from tests.models.test_model_configs import REFERENCE, REFERENCE_TEXTS
from tests.models.test_onnx_runtime import val_photos


def record(name: str) -> None:
    stored = dict(np.load(REFERENCE))
    if f"{name}.key" in stored:
        raise SystemExit(f"{name} already has reference vectors in {REFERENCE}; they are kept as they are")
    encoder = create_encoder(name, device="cpu")
    photos = val_photos(2)
    stored[f"{name}.key"] = np.array(encoder.key)
    stored[f"{name}.images"] = encoder.encode_images(photos)
    stored[f"{name}.texts"] = encoder.encode_texts(REFERENCE_TEXTS)
    np.savez(REFERENCE, **stored)
    print(f"{name}: {encoder.key} recorded in {REFERENCE}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for model in sys.argv[1:]:
        record(model)
