"""What two served models give together: the val figures of each alone and of their ensemble, the
weighted sum of their rankings (cosine less its query-bank offset, each model's own), for several shares.

Each model embeds every val photo once from its file (the preset chosen, fp32) and every caption, as the
service embeds them; the ensemble costs both models' time for every photo. It is the ceiling a student
trained with both as teachers (`photosearch train --teacher A --teacher B --distill W`) aims at in one.

    python benchmarks/ensemble.py [--model joint-default --model joint-default-v5] [--preset fast]
                                  [--data ../shared/data/flickr8k --data ../shared/data/cc3m]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="two served models (default: the two defaults)")
    parser.add_argument("--preset", default="fast", help="test-time preset of both (default: fast)")
    parser.add_argument("--data", action="append", type=Path, help="captioned folders (val split)")
    parser.add_argument("--share", action="append", type=float, help="first model's shares to try")
    args = parser.parse_args()
    models = args.model or ["joint-default", "joint-default-v5"]
    if len(models) != 2:
        parser.error("give exactly two --model")
    folders = args.data or [REPO.parent / "shared/data/flickr8k", REPO.parent / "shared/data/cc3m"]

    from cli.evaluation_commands import open_model
    from models.training.data import load_captioned_photos
    from models.training.evaluate import encode_photo_files, retrieval_report

    encoders = [open_model(m, "cpu", args.preset, "none") for m in models]
    print(f"| val set | {models[0]} share | T→I R@1 | R@5 | R@10 | I→T R@1 | R@5 | R@10 | R@sum |")
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in folders:
        photos = load_captioned_photos(folder, "val")
        texts = [c for p in photos for c in p.captions]
        owners = np.array([i for i, p in enumerate(photos) for _ in p.captions])
        embedded = []
        for encoder in encoders:
            images = encode_photo_files(encoder, [p.path for p in photos])
            captions = encoder.encode_texts(texts)
            bank = encoder.query_bank
            assert bank is not None, "both models need a query bank"
            embedded.append((images, captions, bank.photo_offsets(images), bank.caption_offsets(captions)))
        for share in [1.0, *(args.share or [0.6, 0.5]), 0.0]:
            weights = (share, 1.0 - share)
            # weighted cosines as one dot product: each model's vectors scaled by the root of its share
            images = np.concatenate([np.sqrt(w) * e[0] for w, e in zip(weights, embedded, strict=True)], 1)
            captions = np.concatenate([np.sqrt(w) * e[1] for w, e in zip(weights, embedded, strict=True)], 1)
            report = retrieval_report(
                images,
                captions,
                owners,
                image_offsets=sum(w * e[2] for w, e in zip(weights, embedded, strict=True)),
                text_offsets=sum(w * e[3] for w, e in zip(weights, embedded, strict=True)),
            )
            r = report
            print(
                f"| {folder.name} | {share:g} | {r.t2i_r1:.1f} | {r.t2i_r5:.1f} | {r.t2i_r10:.1f} "
                f"| {r.i2t_r1:.1f} | {r.i2t_r5:.1f} | {r.i2t_r10:.1f} | {r.rsum:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
