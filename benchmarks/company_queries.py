"""What a user sees: the top 5 photos for everyday company-style queries over a gallery of broad web
photos (CC3M val by default), as a PNG grid and a markdown list of each hit's own caption.

The photos and queries are embedded from their files through the public Encoder API as this machine serves
them (`load_encoder`: the model's default way here, its runtime, preset and int8 towers, and, when it has
one, its query bank: a photo's hubness offset is subtracted from its cosine, as the service ranks text
queries). CC3M val holds no company's photos; its offices, cars, food and events
are the nearest thing here to what a company's library holds.

    python benchmarks/company_queries.py [--model joint-default] [--data ../shared/data/cc3m]
                                         [--out benchmarks/company-queries.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUERIES = [
    "a whiteboard with notes in a meeting room",
    "a red car in a parking lot",
    "a plate of food on a table",
    "people at a conference",
    "a laptop on a desk",
    "the outside of an office building",
    "a team posing for a group photo",
    "a product on a white background",
]


def ranked(encoder, photos_vectors: np.ndarray, offsets: np.ndarray | None, k: int) -> list[list[int]]:  # noqa: ANN001
    """The k best photo positions for each query, ranked as the service ranks a text search."""
    scores = encoder.encode_texts(QUERIES) @ photos_vectors.T  # (queries, photos)
    if offsets is not None:
        scores = scores - offsets[None, :]
    return [list(np.argsort(-row)[:k]) for row in scores]


def draw(photos, tops: list[list[int]], title: str, out: Path) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.images import decode_photo

    k = len(tops[0])
    fig, axes = plt.subplots(len(QUERIES), k, figsize=(2.4 * k, 2.5 * len(QUERIES)))
    for row, (query, top) in enumerate(zip(QUERIES, tops, strict=True)):
        for col, position in enumerate(top):
            ax = axes[row, col]
            image = decode_photo(photos[position].path).image
            image.thumbnail((256, 256))
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(query, fontsize=9, rotation=0, ha="right", va="center", wrap=True)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="joint-default")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cc3m")
    parser.add_argument("--split", default="val")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "company-queries.png")
    args = parser.parse_args()

    from models.inference import load_encoder
    from models.training.data import load_captioned_photos
    from models.training.evaluate import encode_photo_files

    encoder = load_encoder(args.model, device="cpu")
    photos = load_captioned_photos(args.data, args.split)
    vectors = encode_photo_files(encoder, [p.path for p in photos], batch_size=encoder.suggested_batch_size())
    bank = encoder.query_bank
    tops = ranked(encoder, vectors, None if bank is None else bank.photo_offsets(vectors), args.k)
    title = f"{encoder.key}: top {args.k} of {len(photos)} {args.data.name} {args.split} photos"
    draw(photos, tops, title, args.out)
    print(f"# {title}\n")
    for query, top in zip(QUERIES, tops, strict=True):
        print(f"**{query}**")
        for position in top:
            print(f"- {photos[position].captions[0]}")
        print()
    print(f"grid: {args.out}")


if __name__ == "__main__":
    main()
