"""The clip family loads real open_clip weights through every supported location, offline.

A tiny open_clip architecture with random weights stands in for ViT-H-14 (no CLIP weights exist on
these machines); the weights are saved and loaded back through the same code a user's would take.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from app.core.config import Settings
from cli.context import open_encoder
from models import registry
from models.clip.encoder import ClipEncoder, ClipWeightsMismatchError, random_clip_encoder
from models.clip.export import save_clip_checkpoint, write_local_dir
from models.clip.factory import instantiate, to_preprocess_config
from models.clip.tiny import TINY_MODEL_CFG, tiny_clip_config
from models.clip.weights import ClipWeightsNotFoundError
from models.errors import ModelNotFoundError
from models.registry import create_encoder

CPU = torch.device("cpu")
REPO = "photosearch-test/clip-tiny"


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8))


@pytest.fixture
def reference() -> ClipEncoder:
    return random_clip_encoder(tiny_clip_config(), CPU, seed=3)


@pytest.fixture
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry whose config folder holds clip-tiny.json, with empty checkpoint and HF cache folders."""
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "clip-tiny.json").write_text(json.dumps(tiny_clip_config(hf_repo=REPO).to_json()))
    monkeypatch.setattr(registry, "CONFIG_DIR", configs)
    monkeypatch.setattr(registry, "BUNDLED_CHECKPOINT_DIR", tmp_path / "bundled")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def same_vectors(a: ClipEncoder, b: ClipEncoder, photo: Image.Image) -> bool:
    texts = ["a dog on the beach", "two children playing football"]
    return bool(
        np.allclose(a.encode_images([photo]), b.encode_images([photo]), atol=1e-5)
        and np.allclose(a.encode_texts(texts), b.encode_texts(texts), atol=1e-5)
    )


def write_hub_cache(root: Path, repo: str, weights: dict[str, torch.Tensor]) -> Path:
    """The layout huggingface_hub leaves: blobs/<sha256>, snapshots/<rev>/<file> → blob, refs/main."""
    folder = root / ("models--" + repo.replace("/", "--"))
    blob_tmp = folder / "blobs" / "tmp"
    blob_tmp.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(blob_tmp))
    sha = hashlib.sha256(blob_tmp.read_bytes()).hexdigest()
    blob = blob_tmp.rename(blob_tmp.with_name(sha))
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").symlink_to(os.path.relpath(blob, snapshot))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)
    return blob


def test_weights_file_next_to_registered_name_loads(
    registered: Path, reference: ClipEncoder, photo: Image.Image
) -> None:
    path = registered / "weights" / "tiny.bin"
    path.parent.mkdir()
    torch.save({"state_dict": reference.model.state_dict()}, path)  # open_clip_train's layout

    encoder = create_encoder("clip-tiny", checkpoint=path, device="cpu")

    assert isinstance(encoder, ClipEncoder)
    assert encoder.key == f"clip-tiny@{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    assert same_vectors(encoder, reference, photo)


@pytest.mark.slow
def test_weights_file_found_in_checkpoint_dir(
    registered: Path, reference: ClipEncoder, photo: Image.Image
) -> None:
    folder = registered / "checkpoints"
    folder.mkdir()
    save_file(reference.model.state_dict(), str(folder / "clip-tiny.safetensors"))

    found = create_encoder("clip-tiny", device="cpu", checkpoint_dirs=[folder])
    assert same_vectors(found, reference, photo)  # type: ignore[arg-type]
    with pytest.raises(ClipWeightsNotFoundError):  # the folder is a setting, never read behind its back
        create_encoder("clip-tiny", device="cpu")
    settings = Settings(model="clip-tiny", checkpoint_dir=folder, device="cpu", data_dir=registered / "data")
    assert same_vectors(open_encoder(settings), reference, photo)  # type: ignore[arg-type]


def test_checkpoint_dir_is_read_from_the_environment_by_the_settings(
    registered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOSEARCH_CHECKPOINT_DIR", str(registered / "checkpoints"))
    assert Settings().checkpoint_dirs == [registered / "checkpoints"]


@pytest.mark.slow
def test_local_dir_loads_by_model_name_and_by_checkpoint(
    registered: Path, reference: ClipEncoder, photo: Image.Image
) -> None:
    folder = write_local_dir(reference, registered / "exported")
    by_model = create_encoder(f"local-dir:{folder}", device="cpu")
    by_checkpoint = create_encoder("clip-tiny", checkpoint=f"local-dir:{folder}", device="cpu")

    assert isinstance(by_model, ClipEncoder) and isinstance(by_checkpoint, ClipEncoder)
    assert by_model.name == "clip-exported"
    assert same_vectors(by_model, reference, photo)
    assert same_vectors(by_checkpoint, reference, photo)
    # open_clip itself reads the same folder: the layout is the real one
    plain = open_clip.create_model(f"local-dir:{folder}")
    with torch.no_grad():
        tokens = open_clip.tokenize(["a dog on the beach"], context_length=32)
        theirs = torch.nn.functional.normalize(plain.encode_text(tokens), dim=-1).numpy()
    assert np.allclose(theirs, by_model.encode_texts(["a dog on the beach"]), atol=1e-5)


def test_hugging_face_cache_is_read_offline(
    registered: Path, reference: ClipEncoder, photo: Image.Image
) -> None:
    blob = write_hub_cache(registered / "hf" / "hub", REPO, reference.model.state_dict())

    encoder = create_encoder("clip-tiny", device="cpu")

    assert encoder.checkpoint_digest == blob.name  # the blob's name is its sha256
    assert same_vectors(encoder, reference, photo)  # type: ignore[arg-type]


def test_missing_weights_name_every_place_and_the_fix(registered: Path) -> None:
    with pytest.raises(ClipWeightsNotFoundError) as caught:
        create_encoder("clip-tiny", device="cpu", checkpoint_dirs=[registered / "checkpoints"])
    message = str(caught.value)
    assert isinstance(caught.value, ModelNotFoundError)
    assert str(registered / "checkpoints" / "clip-tiny") in message
    assert str(registered / "hf" / "hub" / "models--photosearch-test--clip-tiny") in message
    assert f"hf download {REPO} --include 'open_clip_*'" in message
    assert "PHOTOSEARCH_CHECKPOINT=local-dir:" in message


def test_registered_default_says_which_hub_repo_to_fetch(
    registered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "CONFIG_DIR", Path(registry.__file__).parent / "configs")
    with pytest.raises(ClipWeightsNotFoundError, match="laion/CLIP-ViT-H-14-laion2B-s32B-b79K"):
        create_encoder("clip-vit-h-14", device="cpu")


def test_missing_file_and_folder_are_named(registered: Path) -> None:
    with pytest.raises(ClipWeightsNotFoundError, match="nowhere.safetensors"):
        create_encoder("clip-tiny", checkpoint=registered / "nowhere.safetensors", device="cpu")
    empty = registered / "empty-dir"
    empty.mkdir()
    with pytest.raises(ClipWeightsNotFoundError, match="open_clip_config.json"):
        create_encoder(f"local-dir:{empty}", device="cpu")


def test_weights_of_another_architecture_are_refused(registered: Path) -> None:
    other = dict(TINY_MODEL_CFG, embed_dim=16)
    path = registered / "other.safetensors"
    save_file(instantiate(other).state_dict(), str(path))
    with pytest.raises(ClipWeightsMismatchError, match="do not fit"):
        create_encoder("clip-tiny", checkpoint=path, device="cpu")


def test_photosearch_checkpoint_rebuilds_alone(
    tmp_path: Path, reference: ClipEncoder, photo: Image.Image
) -> None:
    path = save_clip_checkpoint(reference, tmp_path / "tuned.safetensors")
    loaded = create_encoder(str(path), device="cpu")
    assert isinstance(loaded, ClipEncoder)
    assert loaded.name == "tuned" and loaded.family == "clip"
    assert loaded.preprocess == reference.preprocess
    assert loaded.logit_scale == pytest.approx(reference.logit_scale)
    assert same_vectors(loaded, reference, photo)


def test_registered_configs_map_open_clip_preprocessing() -> None:
    names = [n for n in registry.list_models() if n.startswith("clip-")]
    assert names == ["clip-vit-b-32", "clip-vit-h-14", "clip-vit-l-14", "clip-xlm-roberta-large-vit-h-14"]
    from models.clip.factory import architecture_config, open_clip_preprocess

    config = registry.load_model_config("clip-vit-l-14")
    pre = to_preprocess_config(open_clip_preprocess(config, architecture_config(config)))
    assert (pre.image_size, pre.resize, pre.mean) == (224, "shortest_crop", (0.5, 0.5, 0.5))
    h14 = registry.load_model_config("clip-vit-h-14")
    assert architecture_config(h14)["embed_dim"] == 1024


def test_unit_vectors_and_logit_scale(reference: ClipEncoder, photo: Image.Image) -> None:
    images = reference.encode_images([photo, photo.rotate(90)])
    texts = reference.encode_texts(["a", "b", "c"])
    assert images.shape == (2, 32) and texts.shape == (3, 32)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    assert reference.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)  # open_clip's initial temperature
    assert reference.precision_label == "fp32"
