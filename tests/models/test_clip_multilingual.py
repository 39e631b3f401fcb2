"""A Hugging Face text tower (as in the multilingual xlm-roberta CLIP) is built from local files only.

A tiny XLM-RoBERTa (config + tokenizer made here) stands in for xlm-roberta-large; it is put in a
Hugging Face cache layout, and the CLIP weights in an open_clip local-dir folder.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

from models.clip.config import ClipConfig
from models.clip.encoder import ClipEncoder, random_clip_encoder
from models.clip.export import save_clip_checkpoint, write_local_dir
from models.clip.tiny import TINY_MODEL_CFG
from models.clip.weights import ClipWeightsNotFoundError
from models.registry import create_encoder

TEXT_REPO = "photosearch-test/tiny-xlmr"
WORDS = ["<s>", "<pad>", "</s>", "<unk>", "a", "photo", "of", "dog", "chien", "perro", "cat", "beach", "."]


def write_text_tower(snapshot: Path) -> None:
    snapshot.mkdir(parents=True)
    XLMRobertaConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    ).save_pretrained(snapshot)
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    ).save_pretrained(snapshot)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    folder = cache / ("models--" + TEXT_REPO.replace("/", "--"))
    write_text_tower(folder / "snapshots" / "rev1")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("rev1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def multilingual_config() -> ClipConfig:
    model_cfg = copy.deepcopy(TINY_MODEL_CFG)
    model_cfg["text_cfg"] = {
        "hf_model_name": TEXT_REPO,
        "hf_tokenizer_name": TEXT_REPO,
        "hf_pooler_type": "mean_pooler",
        "context_length": 16,
    }
    return ClipConfig(family="clip", name="clip-tiny-xlmr", model_cfg=model_cfg)


def test_hf_text_tower_loads_from_local_files(hub: Path, tmp_path: Path) -> None:
    reference = random_clip_encoder(multilingual_config(), torch.device("cpu"), seed=2)
    folder = write_local_dir(reference, tmp_path / "xlmr-clip")
    saved = json.loads((folder / "open_clip_config.json").read_text())
    assert saved["model_cfg"]["text_cfg"]["hf_model_name"] == TEXT_REPO  # a name, not this machine's path

    loaded = create_encoder(f"local-dir:{folder}", device="cpu")
    tuned = create_encoder(str(save_clip_checkpoint(reference, tmp_path / "tuned.safetensors")), device="cpu")

    texts = ["a photo of dog", "a photo of chien", "a photo of beach"]
    for encoder in (loaded, tuned):
        assert isinstance(encoder, ClipEncoder)
        assert np.allclose(encoder.encode_texts(texts), reference.encode_texts(texts), atol=1e-5)
    assert reference.encode_texts(texts).shape == (3, 32)


def test_missing_text_tower_files_say_what_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(ClipWeightsNotFoundError) as caught:
        random_clip_encoder(multilingual_config(), torch.device("cpu"))
    message = str(caught.value)
    assert f"hf download {TEXT_REPO}" in message
    assert str(tmp_path / "empty-hub" / "models--photosearch-test--tiny-xlmr") in message
