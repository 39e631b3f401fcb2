"""Query-bank normalisation: fewer "hub" photos and captions in cross-modal search.

In a joint embedding space some photos sit close to almost every caption ("hubs") and come first for
many unrelated queries; some captions do the same for photo queries. A query bank — embeddings of
typical queries, here the training captions and training photos — measures that: a photo's offset
is the mean cosine of its `k` nearest bank captions times `beta`, and text→photo hits are ranked by
`cosine − offset` (likewise caption hits of a photo query, against the bank photos). This is CSLS
(Conneau et al. 2018) with the query side taken from a fixed bank, as in query-bank normalisation
(Bogolin et al. 2022). The bank travels inside the checkpoint, so a deployed model needs no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.joint.config import JointConfig, QueryBankConfig

IMAGE_KEY = "query_bank.images"
TEXT_KEY = "query_bank.texts"


FLOOR_PERCENTILE = 10.0


@dataclass
class QueryBank:
    """Offsets are beta × max(hubness, floor): a photo or caption unlike anything typical (a microscope
    slide among holiday photos) has a low hubness, and without the floor would be promoted for every
    query. The floors are the FLOOR_PERCENTILE-th percentile of the bank entries' own hubness; on Flickr8k
    val they cost 0.2 of R@sum 343 (the stage-2 joint-default) and stop such outliers from outranking what a
    query names."""

    images: np.ndarray  # (n_photos, dim) float32 unit vectors of bank photos
    texts: np.ndarray  # (n_captions, dim) float32 unit vectors of bank captions
    k: int = 50
    beta: float = 0.5
    photo_floor: float | None = None  # None: computed from the bank
    caption_floor: float | None = None

    def __post_init__(self) -> None:
        if self.photo_floor is None:
            self.photo_floor = _percentile(self._hubness(self.images, self.texts))
        if self.caption_floor is None:
            self.caption_floor = _percentile(self._hubness(self.texts, self.images))

    def photo_offsets(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) photo vectors → (n,) offsets to subtract from a text query's cosine."""
        return self.beta * np.maximum(self._hubness(vectors, self.texts), _floor_value(self.photo_floor))

    def caption_offsets(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) caption vectors → (n,) offsets to subtract from a photo query's cosine."""
        return self.beta * np.maximum(self._hubness(vectors, self.images), _floor_value(self.caption_floor))

    def _hubness(self, vectors: np.ndarray, bank: np.ndarray) -> np.ndarray:
        """Mean cosine of each vector's k nearest bank entries."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, bank.shape[1])
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.float32)
        k = min(self.k, len(bank))
        hubness = np.empty(len(vectors), dtype=np.float32)
        for start in range(0, len(vectors), 4096):  # (4096, n_bank) similarities at a time
            sims = vectors[start : start + 4096] @ bank.T
            hubness[start : start + 4096] = np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)
        return hubness

    def tensors(self) -> dict[str, torch.Tensor]:
        """What the checkpoint stores: both banks in float16 (half the size)."""
        return {
            IMAGE_KEY: torch.from_numpy(self.images).half(),
            TEXT_KEY: torch.from_numpy(self.texts).half(),
        }

    def settings(self, source: str | None = None) -> QueryBankConfig:
        """What the checkpoint's config says of the bank it holds."""
        return QueryBankConfig(
            k=self.k,
            beta=self.beta,
            photos=len(self.images),
            captions=len(self.texts),
            photo_floor=round(_floor_value(self.photo_floor), 6),
            caption_floor=round(_floor_value(self.caption_floor), 6),
            **({"source": source} if source is not None else {}),
        )

    @classmethod
    def from_checkpoint(
        cls, settings: QueryBankConfig | None, state: dict[str, torch.Tensor]
    ) -> QueryBank | None:
        """The bank a checkpoint carries (its config's "query_bank" + its two tensors), or None."""
        if settings is None:
            return None
        if IMAGE_KEY not in state or TEXT_KEY not in state:
            raise ValueError(f"checkpoint config names a query bank but lacks tensors {IMAGE_KEY}/{TEXT_KEY}")
        images = state[IMAGE_KEY].float().numpy()
        texts = state[TEXT_KEY].float().numpy()
        return cls(images, texts, settings.k, settings.beta, settings.photo_floor, settings.caption_floor)


def _percentile(hubness: np.ndarray) -> float:
    return float(np.percentile(hubness, FLOOR_PERCENTILE)) if len(hubness) else -1.0


def _floor_value(floor: float | None) -> float:
    """A floor not set (yet) clamps nothing: cosines are >= -1."""
    return -1.0 if floor is None else floor


def split_bank_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A checkpoint's state without the bank tensors (which belong to no module)."""
    return {k: v for k, v in state.items() if k not in (IMAGE_KEY, TEXT_KEY)}


def attach_query_bank(path: Path, bank: QueryBank | None, *, source: str = "") -> Path:
    """Rewrite a joint checkpoint with `bank` inside it, replacing any bank it had (None: drop it)."""
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint.config, JointConfig):
        family = checkpoint.config.family
        raise ValueError(f"{path} is a {family!r} checkpoint; query banks are for joint ones")
    state = split_bank_tensors(checkpoint.state_dict)
    config = without_bank(checkpoint.config)
    if bank is not None:
        config = config.replace(query_bank=bank.settings(source))
        state.update(bank.tensors())
    return save_checkpoint(path, config=config, state_dict=state, info=checkpoint.info)


def without_bank(config: JointConfig) -> JointConfig:
    """The config with no "query_bank" key at all (not even a null one)."""
    return JointConfig.model_validate(config.model_dump(exclude_unset=True, exclude={"query_bank"}))
