"""Contrastive losses over a batch of matched (image, text) unit vectors, both (batch, dim)."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def info_nce(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (the CLIP loss) with a learned temperature."""
    logits = logit_scale.exp().clamp(max=100.0) * image @ text.T  # (batch, batch)
    targets = torch.arange(len(image), device=image.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def hard_negative_nce(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, hardness: float
) -> torch.Tensor:
    """InfoNCE whose negatives count by how close they come (HN-NCE): in each row the other
    captions (photos) are weighted by softmax(hardness × logit) over the negatives, scaled to average
    1, so the near misses (two dogs on grass, a different red car) carry more of the loss than the
    easy ones. hardness 0 is plain InfoNCE; the weights are constants of each step (no gradient)."""
    logits = logit_scale.exp().clamp(max=100.0) * image @ text.T
    count = len(image)
    targets = torch.arange(count, device=image.device)
    if hardness == 0 or count < 2:
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    diagonal = torch.eye(count, dtype=torch.bool, device=image.device)

    def weighted(rows: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            scores = (hardness * rows).masked_fill(diagonal, -math.inf)
            log_weights = scores - scores.logsumexp(dim=1, keepdim=True) + math.log(count - 1)
            log_weights = log_weights.masked_fill(diagonal, 0.0)
        return F.cross_entropy(rows + log_weights, targets)

    return (weighted(logits) + weighted(logits.T)) / 2


def vse_hardest(image: torch.Tensor, text: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """VSE++: hinge on the hardest in-batch negative in each direction."""
    scores = image @ text.T  # (batch, batch)
    positive = scores.diag()
    mask = torch.eye(len(scores), dtype=torch.bool, device=scores.device)
    cost_text = (margin + scores - positive[:, None]).clamp(min=0).masked_fill(mask, 0)
    cost_image = (margin + scores - positive[None, :]).clamp(min=0).masked_fill(mask, 0)
    return cost_text.max(dim=1).values.mean() + cost_image.max(dim=0).values.mean()


def triplet_shifted(image: torch.Tensor, text: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Triplet loss with the batch shifted by one as negatives."""
    negative_text = text.roll(1, dims=0)
    negative_image = image.roll(1, dims=0)
    positive = (image * text).sum(-1)
    loss_i = (margin - positive + (image * negative_text).sum(-1)).clamp(min=0)
    loss_t = (margin - positive + (negative_image * text).sum(-1)).clamp(min=0)
    return (loss_i + loss_t).mean()


def cosine(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Pull matched pairs together only (no negatives): 1 - cos."""
    return (1 - (image * text).sum(-1)).mean()


LOSSES = ("infonce", "vse_hardest", "triplet_shifted", "cosine")


def contrastive_loss(
    kind: str,
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    margin: float = 0.2,
    hardness: float = 0.0,
) -> torch.Tensor:
    """hardness: for infonce, how much more the near-miss negatives weigh (hard_negative_nce)."""
    if kind == "infonce":
        return (
            hard_negative_nce(image, text, logit_scale, hardness)
            if hardness
            else info_nce(image, text, logit_scale)
        )
    if kind == "vse_hardest":
        return vse_hardest(image, text, margin)
    if kind == "triplet_shifted":
        return triplet_shifted(image, text, margin)
    if kind == "cosine":
        return cosine(image, text)
    raise ValueError(f"unknown loss {kind!r}; available: {list(LOSSES)}")
