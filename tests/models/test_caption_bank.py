"""The caption bank: its sidecar file, the cache of its vectors, and the sidecar training writes."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from models.caption_bank import (
    CaptionBankError,
    cache_path,
    prepare_caption_bank,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from models.checkpoint import load_checkpoint, save_checkpoint
from models.encoder import Encoder
from models.registry import create_encoder
from models.training.calibrate import write_training_captions
from tests.builders.caption_banks import BANK_TEXTS, tiny_encoder


def test_sidecar_keeps_each_text_once_with_its_header(tmp_path: Path) -> None:
    texts = ["a  dog\truns ", "a dog runs", "", "   ", "two cats"]
    path = write_sidecar(tmp_path / "m.captions.txt.gz", texts, {"source": "x:train", "attribution": "A, B"})
    again = write_sidecar(tmp_path / "n.captions.txt.gz", texts, {"source": "x:train", "attribution": "A, B"})
    sidecar = read_sidecar(path)
    assert sidecar.texts == ["a dog runs", "two cats"]
    assert sidecar.header["source"] == "x:train" and sidecar.header["attribution"] == "A, B"
    assert path.read_bytes() == again.read_bytes()  # no timestamp: same captions, same file, same cache key
    assert sidecar_path(Path("/m/joint-default.safetensors")) == Path("/m/joint-default.captions.txt.gz")


def test_a_file_that_is_not_a_caption_bank_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.captions.txt.gz"
    plain.write_bytes(b"not gzip at all")
    with pytest.raises(CaptionBankError, match="not a gzipped UTF-8 caption bank"):
        read_sidecar(plain)
    plain.write_bytes(gzip.compress(b"a dog\na cat\n"))
    with pytest.raises(CaptionBankError, match="is not a caption bank"):
        read_sidecar(plain)


def test_vectors_are_embedded_once_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = tiny_encoder(tmp_path / "model")
    bank = prepare_caption_bank(encoder, tmp_path / "cache")
    assert bank is not None and bank.texts == BANK_TEXTS
    np.testing.assert_allclose(bank.vectors, encoder.encode_texts(BANK_TEXTS), atol=1e-6)
    assert bank.offsets is None  # no query bank in this model

    def no_embedding(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the cached bank was embedded again")

    monkeypatch.setattr(encoder, "encode_texts", no_embedding)
    cached = prepare_caption_bank(encoder, tmp_path / "cache")
    assert cached is not None and np.array_equal(cached.vectors, bank.vectors)


def test_a_changed_sidecar_or_checkpoint_never_meets_a_stale_cache(tmp_path: Path) -> None:
    encoder = tiny_encoder(tmp_path / "model")
    first = prepare_caption_bank(encoder, tmp_path / "cache")
    assert first is not None
    assert encoder.checkpoint_path is not None
    write_sidecar(sidecar_path(encoder.checkpoint_path), ["a cat sleeps on a sofa", *BANK_TEXTS], {})
    changed = prepare_caption_bank(encoder, tmp_path / "cache")
    assert changed is not None and changed.texts[0] == "a cat sleeps on a sofa" and len(changed) == 9
    np.testing.assert_allclose(changed.vectors[1:], first.vectors, atol=1e-6)
    # new weights (a checkpoint rewritten with other values): its own cache entry, its own vectors
    checkpoint = load_checkpoint(encoder.checkpoint_path)
    state = {k: v * 2 if v.is_floating_point() else v for k, v in checkpoint.state_dict.items()}
    save_checkpoint(encoder.checkpoint_path, config=checkpoint.config, state_dict=state)
    retrained = create_encoder(str(encoder.checkpoint_path), device="cpu")
    bank = prepare_caption_bank(retrained, tmp_path / "cache")
    assert bank is not None and not np.allclose(bank.vectors[1:], first.vectors, atol=1e-3)
    assert len(list((tmp_path / "cache" / "caption-banks").glob("*.npz"))) == 3


def test_a_corrupt_cache_is_recomputed_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    encoder = tiny_encoder(tmp_path / "model")
    bank = prepare_caption_bank(encoder, tmp_path / "cache")
    assert bank is not None and encoder.checkpoint_path is not None
    cached = cache_path(tmp_path / "cache", encoder, read_sidecar(sidecar_path(encoder.checkpoint_path)))
    cached.write_bytes(cached.read_bytes()[:100])  # a torn write from some other tool
    with caplog.at_level(logging.WARNING, logger="models.caption_bank"):
        again = prepare_caption_bank(encoder, tmp_path / "cache")
    assert again is not None and np.array_equal(again.vectors, bank.vectors)
    assert "is unreadable" in caplog.text and "computing it again" in caplog.text
    assert prepare_caption_bank(encoder, tmp_path / "cache") is not None  # rewritten whole
    assert not list(cached.parent.glob(".*tmp*"))  # no temp file left behind


def test_a_checkpoint_without_a_sidecar_has_no_bank(tmp_path: Path) -> None:
    encoder: Encoder = tiny_encoder(tmp_path / "model", texts=[])
    assert prepare_caption_bank(encoder, tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists()


def test_training_writes_the_captions_it_trained_on_beside_the_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"image": "a.jpg", "captions": ["A dog runs .", "A  dog runs ."], "split": "train"},
        {"image": "b.jpg", "captions": ["Two kids play ."], "split": "train"},
        {"image": "c.jpg", "captions": ["A held-out caption ."], "split": "val"},
    ]
    (data / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "SOURCE.md").write_text("# Little set (train + val)\n\nMore words.\n")
    sidecar = read_sidecar(write_training_captions(tmp_path / "m.safetensors", data))
    assert sidecar.path == tmp_path / "m.captions.txt.gz"
    assert sidecar.texts == ["A dog runs", "Two kids play"]  # cleaned as training reads them; no val
    assert (
        sidecar.header["source"] == "data:train"
        and "Little set (train + val)" in sidecar.header["attribution"]
    )


def test_the_shipped_model_ships_its_training_captions() -> None:
    from models.registry import BUNDLED_CHECKPOINT_DIR

    path = BUNDLED_CHECKPOINT_DIR / "joint-default.captions.txt.gz"
    sidecar = read_sidecar(path)
    assert path.stat().st_size < 1_000_000
    # Flickr8k's 30,455 train captions (some repeated) and CC3M's 15,214, each distinct caption once
    assert 45_000 < len(sidecar.texts) <= 30_455 + 15_214 and len(set(sidecar.texts)) == len(sidecar.texts)
    assert sidecar.header["source"] == "flickr8k:train + cc3m:train"
    assert "Hodosh" in sidecar.header["attribution"] and "Sharma" in sidecar.header["attribution"]
    assert any("office" in text for text in sidecar.texts)  # the broader world a company's photos show
    # the Lite1 + MiniLM model it replaced (whose bank the real-bank annotation test embeds) ships the same
    assert (BUNDLED_CHECKPOINT_DIR / "joint-default-v6.captions.txt.gz").read_bytes() == path.read_bytes()
    earlier = read_sidecar(BUNDLED_CHECKPOINT_DIR / "joint-flickr8k.captions.txt.gz")
    assert 30_000 < len(earlier.texts) <= 30_455 and earlier.header["source"] == "flickr8k:train"


def test_a_bank_embedded_with_int8_asked_for_but_a_text_tower_in_pytorch_is_prepared(tmp_path: Path) -> None:
    """quantize=text on a model whose text tower has no ONNX graph (bag of words): the captions are
    embedded as the server embeds them, in PyTorch, and the bank is prepared and cached all the same."""
    from models.inference import ServingOptions, load_encoder
    from tests.builders.caption_banks import tiny_checkpoint

    checkpoint = tiny_checkpoint(tmp_path / "model")
    options = ServingOptions(runtime="onnx", quantize="text", cache_dir=tmp_path / "onnx")
    encoder = load_encoder(str(checkpoint), device="cpu", options=options)
    assert encoder.key.endswith("+int8text") and encoder.text_session is None  # type: ignore[attr-defined]
    bank = prepare_caption_bank(encoder, tmp_path / "cache")
    assert bank is not None and bank.texts == BANK_TEXTS
    assert cache_path(tmp_path / "cache", encoder, read_sidecar(sidecar_path(checkpoint))).is_file()
