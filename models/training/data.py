"""Captioned photo sets in the captions.jsonl layout:
`{"image": "images/x.jpg", "captions": [..], "split": "train"|"val"}` per line, paths relative
to the file's folder."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionedPhoto:
    path: Path
    captions: tuple[str, ...]
    split: str


class DatasetError(InvalidInputError):
    pass


def clean_caption(text: str) -> str:
    """Flickr captions are space-tokenised with a trailing ' .'; make them read like queries."""
    text = " ".join(text.split())
    if text.endswith(" ."):
        text = text[:-2]
    return text.strip()


def load_captioned_photos(data: Path, split: str | None = None) -> list[CaptionedPhoto]:
    """Read DIR/captions.jsonl (or a .jsonl path); keep one split when given."""
    data = Path(data)
    jsonl = data if data.suffix == ".jsonl" else data / "captions.jsonl"
    if not jsonl.is_file():
        raise DatasetError(f"no captions file at {jsonl} (expected captions.jsonl, one JSON object a line)")
    photos = []
    with open(jsonl, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                captions = tuple(clean_caption(c) for c in row["captions"] if c.strip())
                item = CaptionedPhoto(jsonl.parent / row["image"], captions, row.get("split", "train"))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(f"{jsonl}:{number}: not a captions row ({exc})") from exc
            if split is None or item.split == split:
                photos.append(item)
    if not photos:
        raise DatasetError(f"{jsonl} has no photos in split {split!r}")
    return photos


MIN_VAL_PHOTOS = 100  # fewer val photos than this measure too coarsely to pick an epoch by


@dataclass(frozen=True)
class TrainingSet:
    """One captioned data set of a training run, and how often its photos are drawn: weight 1 shows each
    photo once an epoch, 0.5 a fresh half of them, 2 each twice."""

    path: Path
    weight: float = 1.0

    @property
    def name(self) -> str:
        return (self.path.parent if self.path.suffix == ".jsonl" else self.path).name


def training_sets(paths: Sequence[Path], weights: Sequence[float] | None = None) -> list[TrainingSet]:
    """The data sets of a run: one weight per folder (none given: 1 each)."""
    if not paths:
        raise DatasetError("no training data: give at least one folder with captions.jsonl")
    weights = list(weights) if weights else [1.0] * len(paths)
    if len(weights) != len(paths):
        raise DatasetError(f"{len(weights)} sampling weights for {len(paths)} data folders: give one each")
    if bad := [w for w in weights if not (math.isfinite(w) and w > 0)]:
        raise DatasetError(f"a sampling weight must be a positive number; got {bad[0]}")
    sets = [TrainingSet(Path(p), float(w)) for p, w in zip(paths, weights, strict=True)]
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise DatasetError(f"two data folders share a name ({names}): each val set is reported by it")
    return sets


TrainingData = Path | Sequence[TrainingSet]  # one folder, or several with their sampling weights


def as_sets(data: TrainingData) -> list[TrainingSet]:
    return [TrainingSet(Path(data))] if isinstance(data, (str, Path)) else list(data)


def sets_label(data: TrainingData, split: str) -> str:
    """How a bank or checkpoint names what it came from: "flickr8k:train + cc3m:train"."""
    return " + ".join(f"{s.name}:{split}" for s in as_sets(data))


def load_split(data: TrainingData, split: str) -> list[CaptionedPhoto]:
    """The split's photos of every set, one set after another."""
    return [photo for s in as_sets(data) for photo in load_captioned_photos(s.path, split)]


def load_val_sets(sets: Sequence[TrainingSet]) -> dict[str, list[CaptionedPhoto]]:
    """Each set's val photos by set name; a warning for a set too small to choose an epoch by."""
    val = {s.name: load_captioned_photos(s.path, "val") for s in sets}
    for name, photos in val.items():
        if len(photos) < MIN_VAL_PHOTOS:
            log.warning(
                "val set %s has only %d photos (fewer than %d): its R@K moves in steps of %.1f points and "
                "the epoch it picks may be over-fitted; give it more val photos",
                name, len(photos), MIN_VAL_PHOTOS, 100 / len(photos),
            )  # fmt: skip
    return val


def set_draws(size: int, weight: float) -> int:
    """How many photos of a set of `size` an epoch shows at this weight (at least one)."""
    return max(1, round(weight * size))


@dataclass(frozen=True)
class SetSampling:
    """How the epochs of a run draw from its data sets, laid end to end: each set's size and weight."""

    sizes: tuple[int, ...]
    weights: tuple[float, ...]

    @property
    def draws(self) -> int:
        """Photos an epoch shows."""
        return sum(set_draws(n, w) for n, w in zip(self.sizes, self.weights, strict=True))

    def order(self, generator: torch.Generator) -> torch.Tensor:
        return epoch_order(self.sizes, self.weights, generator)


def epoch_order(sizes: Sequence[int], weights: Sequence[float], generator: torch.Generator) -> torch.Tensor:
    """One epoch's photo positions over sets laid end to end, shuffled together: set i gives
    round(weight × size) draws, each photo at most once per whole multiple (a weight of 2.5 shows every
    photo twice and a random half of them once more)."""
    import torch  # the training loops' dependency, not the command line's

    parts, offset = [], 0
    for size, weight in zip(sizes, weights, strict=True):
        whole, rest = divmod(set_draws(size, weight), size)
        parts += [torch.arange(size) + offset] * whole
        parts.append(torch.randperm(size, generator=generator)[:rest] + offset)
        offset += size
    order = torch.cat(parts)
    return order[torch.randperm(len(order), generator=generator)]
