"""A picture of the shared space: photos and captions of one split, in 2-D by t-SNE, each photo joined
to its caption, for an untrained model of the same config beside the trained one."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from models.encoder import Encoder  # noqa: E402
from models.images import decode_photo  # noqa: E402
from models.training.data import load_captioned_photos  # noqa: E402


def untrained_twin(encoder: Encoder, seed: int = 0) -> Encoder:
    """The same joint config with fresh (random) heads and scratch towers; pretrained towers stay."""
    from models.joint.encoder import JointEncoder
    from models.joint.model import JointModel

    if not isinstance(encoder, JointEncoder):
        raise ValueError(f"embedding maps need a joint-family model; {encoder.name!r} is {encoder.family!r}")
    torch.manual_seed(seed)
    model = JointModel(encoder.model.config)
    return JointEncoder(f"{encoder.name} (untrained)", model, "0" * 64, encoder.device)


def _project(encoder: Encoder, images: list, captions: list[str], seed: int) -> tuple[np.ndarray, float]:
    """→ (2n, 2) t-SNE points (photos first, then captions) and the mean matched-pair cosine."""
    image = encoder.encode_images(images)  # (n, dim)
    text = encoder.encode_texts(captions)  # (n, dim)
    matched = float((image * text).sum(axis=1).mean())
    both = np.concatenate([image, text])
    perplexity = min(30.0, (len(both) - 1) / 3)
    points = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, metric="cosine").fit_transform(
        both
    )
    return points, matched


def embedding_map(
    encoder: Encoder, data: Path, out: Path, *, split: str = "val", count: int = 150, seed: int = 0
) -> Path:
    """Write a PNG: untrained (left) and trained (right) maps of `count` photos with one caption each."""
    if count < 4:
        raise ValueError(f"an embedding map needs at least 4 photos; got count={count}")
    photos = load_captioned_photos(data, split)[:count]
    images = [decode_photo(p.path).image for p in photos]
    captions = [p.captions[0] for p in photos]
    fig, axes = plt.subplots(1, 2, figsize=(14, 7))
    for ax, model in zip(axes, (untrained_twin(encoder, seed), encoder), strict=True):
        points, matched = _project(model, images, captions, seed)
        n = len(photos)
        for i in range(n):
            ax.plot(*zip(points[i], points[n + i], strict=True), color="0.75", linewidth=0.6, zorder=1)
        ax.scatter(*points[:n].T, s=14, color="tab:blue", label="photo", zorder=2)
        ax.scatter(*points[n:].T, s=14, color="tab:orange", marker="^", label="caption", zorder=2)
        ax.set_title(f"{model.name}\nmean photo–caption cosine {matched:.2f}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="upper right")
    fig.suptitle(f"t-SNE of {len(photos)} {split} photos and their first captions (lines join pairs)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
