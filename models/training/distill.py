"""Learning from teachers: trained joint models whose similarities the student learns besides the pairs.

An ensemble of two models (say the Lite1 and Lite0 defaults) ranks better than either, but serving it
embeds every photo twice. Distillation moves that into one model: before training, each teacher embeds
every cached training view of every photo and every caption once (cached like the towers' outputs); each
step then asks the student's in-batch similarities to follow the teachers' averaged ones (a softened
ranking of every caption for each photo and of every photo for each caption) as well as to find the
true pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from models.checkpoint import checkpoint_digest, read_checkpoint_config
from models.errors import InvalidInputError
from models.joint.config import JointConfig
from models.joint.model import JointModel
from models.training.data import CaptionedPhoto
from models.training.features import cache_path, image_features, text_features

log = logging.getLogger(__name__)


@dataclass
class Teachers:
    """The teachers' vectors of every training view and caption, each teacher's unit vector scaled by
    the square root of its share and laid side by side, so one dot product is the teachers' weighted
    mean cosine."""

    images: torch.Tensor  # (views, n_photos, sum of the teachers' dims) float32
    texts: torch.Tensor  # (n_captions, sum of the teachers' dims) float32
    scale: float  # the teachers' mean temperature (logit scale): how sharp their rankings are


def check_teachers(paths: Sequence[Path], weight: float) -> list[JointConfig]:
    """Every teacher a joint checkpoint file, and the distillation weight in [0, 1) with teachers (1
    would leave the pairs out of the loss altogether); else an input error naming the option."""
    if not 0 <= weight < 1:
        raise InvalidInputError(f"--distill must be at least 0 and under 1; got {weight}")
    configs = []
    for path in paths:
        if not Path(path).is_file():
            raise InvalidInputError(f"--teacher {path}: no such checkpoint file")
        config = read_checkpoint_config(Path(path))
        if not isinstance(config, JointConfig):
            raise InvalidInputError(
                f"--teacher {path}: a joint checkpoint is needed; it holds {config.family}"
            )
        configs.append(config)
    if paths and weight == 0:
        raise InvalidInputError("--teacher needs --distill above 0: the share of the loss the teachers set")
    return configs


def distill_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    teacher_image: torch.Tensor,
    teacher_text: torch.Tensor,
    teacher_scale: float,
) -> torch.Tensor:
    """KL divergence of the student's in-batch rankings from the teachers', both directions: for each
    photo, softmax over the batch's captions of the teachers' similarities (at their temperature)
    against the student's (at its own); likewise for each caption over the photos. Zero when the
    student ranks the batch as the teachers do; the teachers get no gradient."""
    student = logit_scale.exp().clamp(max=100.0) * image @ text.T
    with torch.no_grad():
        target = teacher_scale * teacher_image @ teacher_text.T

    def kl(ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
        return F.kl_div(
            F.log_softmax(ours, 1), F.log_softmax(theirs, 1), reduction="batchmean", log_target=True
        )

    return (kl(student, target) + kl(student.T, target.T)) / 2


def teacher_vectors(
    paths: Sequence[Path],
    sets: Sequence[list[CaptionedPhoto]],
    views: tuple[str, ...],
    *,
    cache_dir: Path,
    device: torch.device,
    crop_seed: int,
    workers: int = 0,
) -> Teachers:
    """Each teacher's vectors of the training sets' photos (every view, the same crops the student's
    cache holds: a crop's box depends on the seed and the photo, not the model) and captions, sets laid
    end to end as training joins them; teachers share equally."""
    from models.training.resume import init_from_checkpoint

    share = 1.0 / len(paths)
    images, texts, scales = [], [], []
    for path in paths:
        config = read_checkpoint_config(Path(path))
        assert isinstance(config, JointConfig)
        model = JointModel(config)
        init_from_checkpoint(model, Path(path))
        model.eval()
        image, text = _cached_vectors(model, Path(path), sets, views, cache_dir, device, crop_seed, workers)
        images.append(torch.from_numpy(image) * share**0.5)
        texts.append(torch.from_numpy(text) * share**0.5)
        scales.append(float(model.logit_scale.detach().exp().clamp(max=100.0)))
        log.info("teacher %s: %d photo views, %d captions", path, image.shape[0] * image.shape[1], len(text))
    return Teachers(torch.cat(images, -1), torch.cat(texts, -1), float(np.mean(scales)))


def _cached_vectors(
    model: JointModel,
    path: Path,
    sets: Sequence[list[CaptionedPhoto]],
    views: tuple[str, ...],
    cache_dir: Path,
    device: torch.device,
    crop_seed: int,
    workers: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(views, n_photos, dim) and (n_captions, dim) unit vectors of one teacher, cached by its file's
    digest, the views, the crop seed and the photos and captions."""
    key = {"teacher": checkpoint_digest(path), "views": list(views), "crop_seed": crop_seed}
    items = [item for photos in sets for p in photos for item in (str(p.path), *p.captions)]
    image_path = cache_path(cache_dir, "teacher-image", key, items)
    text_path = cache_path(cache_dir, "teacher-text", key, items)
    if image_path.is_file() and text_path.is_file():
        return np.load(image_path), np.load(text_path)
    config = model.config
    images, texts = [], []
    for photos in sets:
        frozen = image_features(
            model.image_tower,
            config.preprocess,
            [p.path for p in photos],
            spec=config.image_tower,
            cache_dir=cache_dir,
            views=views,
            device=device,
            workers=workers,
            crop_seed=crop_seed,
        )
        images.append(np.stack([_embed(model.embed_image_frozen, view) for view in frozen]))
        tokens, mask = text_features(
            model.text_tower,
            [c for p in photos for c in p.captions],
            spec=config.text_tower,
            cache_dir=cache_dir,
            device=device,
        )
        texts.append(_embed(model.embed_text_frozen, tokens, mask))
    image, text = np.concatenate(images, 1), np.concatenate(texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(image_path, image)
    np.save(text_path, text)
    return image, text


@torch.inference_mode()
def _embed(
    embed: Callable[..., torch.Tensor], rows: np.ndarray, mask: np.ndarray | None = None, chunk: int = 256
) -> np.ndarray:
    """A teacher's embedding of cached tower outputs, a chunk at a time → (n, dim) float32."""
    out = []
    for start in range(0, len(rows), chunk):
        piece = torch.from_numpy(np.asarray(rows[start : start + chunk])).float()
        if mask is None:
            out.append(embed(piece))
        else:
            out.append(embed(piece, torch.from_numpy(np.asarray(mask[start : start + chunk]))))
    return torch.cat(out).float().numpy()
