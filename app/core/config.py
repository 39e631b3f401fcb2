"""All settings, read from the environment (PHOTOSEARCH_ prefix, nested groups with __)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.images import DEFAULT_MAX_PIXELS
from models.inference import ServingOptions


class ApiSettings(BaseModel):
    max_upload_bytes: int = 20 * 1024 * 1024
    max_upload_pixels: int = 40_000_000  # checked from the image header, before decoding
    max_body_bytes: int = 256 * 1024  # any body that is not an upload (JSON)
    max_query_chars: int = 1000
    max_k: int = 1000
    default_k: int = 20
    max_offset: int = 10_000
    max_labels: int = 100  # zero-shot labels in one classify request
    max_prompt_chars: int = 200  # a classify prompt, and each label
    heavy_slots: int = 2  # decodings and embeddings at once; more wait
    busy_wait_s: float = 10.0  # how long a request waits for a slot before a 429
    thumbnail_px: int = 256
    # browser origins (https://intranet.example) whose pages may call the API; empty: none
    cors_allow_origins: list[str] = []
    dedup_threshold: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="Search results collapse near-identical photos (dedup, on by default): two photos are "
        "duplicates when they are the same file (sha256) or the cosine of their photo vectors is at least "
        "this. 0.95 for joint-default: the closest pair of different photos among 1,000 Flickr8k val "
        "photos is at 0.923, plus a 0.02 margin; it catches every byte and mirrored copy, 97.5% of "
        "burst-like frames and 56% of q=50 JPEG re-encodes (benchmarks/dedup.md and MODELS.md; 0.95 for "
        "joint-default-v6 too, 0.97 for joint-default-v5). Lower it to merge more, raise it to merge "
        "less; other models need their own value (python benchmarks/dedup_threshold.py).",
    )


class IndexerSettings(BaseModel):
    """The one place the indexer's defaults are defined (indexer/pipeline.py reads them)."""

    batch_size: int | None = None  # None: the model chooses (32 on CPU, more on a GPU)
    workers: int | None = None  # decoding processes; None: one per core, 0: decode in the indexing process
    reduced_decode: bool = True  # JPEGs decoded at 1/2-1/8 scale when still at least the model's input size
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    flat_max_vectors: int = 50_000  # above: HNSW
    hnsw_max_vectors: int = 1_000_000  # above: IVF-PQ with exact re-ranking
    # zero-shot tags (`index --labels`, `tag`): at most label_top_k a photo, each at least this
    # probable. 0.18: calibrated for joint-default on 1,000 Flickr8k val photos with benchmarks/labels.txt
    # (25 labels): tag precision 0.51, recall 0.42 (benchmarks/MODELS.md; the same for joint-default-v6,
    # whose figures against the plain top 3 are in benchmarks/labels.md)
    label_top_k: int = 3
    label_min_probability: float = 0.18
    # a long run publishes its FAISS files this often, so search follows indexing
    publish_every_seconds: float = 120.0
    include_hidden: bool = False  # index files and folders whose name starts with "."
    follow_symlinks_outside: bool = False  # follow symlinks that lead out of the scanned folder
    # `index` embeds the model's caption bank (annotation's model captions) once per model and machine
    # after a run; false leaves it to the first annotation that needs it or to `photosearch caption-bank`
    caption_bank: bool = True


class AuthSettings(BaseModel):
    """API keys (`photosearch keys create`). Off only for a server bound to a loopback address."""

    required: bool = True
    # 0: every request looks its key up in SQL, so a revoked key is refused on its next request on
    # every replica; more trusts a key seen this recently (fewer lookups, revocation shows within it)
    cache_seconds: float = 0.0


class InferenceSettings(BaseModel):
    """How the model embeds (models/inference.py): on which runtime, with which test-time preset."""

    # auto: ONNX Runtime on the CPU, PyTorch on CUDA; torch; onnx (CPU only)
    runtime: Literal["auto", "torch", "onnx"] = "auto"
    # fast | balanced | best (models/joint/config.py); None: the default the measurements chose. Part of
    # the model key, so an index is never fed vectors of two presets
    preset: Literal["fast", "balanced", "best"] | None = None
    # int8 ONNX towers (benchmarks/runtime.md): auto (the image tower when the checkpoint has int8
    # calibration beside it: no measured recall cost) | none | image | text (costs recall) | all
    quantize: Literal["auto", "none", "image", "text", "all"] = "auto"
    onnx_cache_dir: Path | None = None  # None: ~/.cache/photosearch/onnx (exports keyed by checkpoint hash)

    def serving_options(self) -> ServingOptions:
        return ServingOptions(
            runtime=self.runtime, preset=self.preset, quantize=self.quantize, cache_dir=self.onnx_cache_dir
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSEARCH_", env_nested_delimiter="__")

    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/photosearch.db"
    )
    model: str = "joint-default"
    checkpoint: Path | None = None
    checkpoint_dir: Path | None = None  # searched for weights before models/checkpoints/
    train_data: Path | None = None  # captions.jsonl folder for train/evaluate/calibrate/... without --data
    cache_dir: Path | None = None  # derived data worth keeping (caption bank vectors); None: <data_dir>/cache
    device: str = "auto"
    collection: str = "default"
    api: ApiSettings = ApiSettings()
    indexer: IndexerSettings = IndexerSettings()
    auth: AuthSettings = AuthSettings()
    inference: InferenceSettings = InferenceSettings()

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Absolute from the start: the paths written under it (index files) must stay valid when a
        command or the server runs from another working directory."""
        return Path(os.path.abspath(value.expanduser()))

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'photosearch.db').resolve()}"

    @property
    def checkpoint_dirs(self) -> list[Path]:
        """Folders create_encoder searches before the bundled checkpoints."""
        return [self.checkpoint_dir] if self.checkpoint_dir else []

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"

    @property
    def caches(self) -> Path:
        """Where derived data is cached: the cache_dir setting, else data_dir/cache."""
        return self.cache_dir.expanduser().absolute() if self.cache_dir else self.data_dir / "cache"


@lru_cache
def get_settings() -> Settings:
    return Settings()
