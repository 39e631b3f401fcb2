"""What a cross-attention re-ranker costs per text query on this machine, against the dual encoder's
own query (embedding the text), in one process: its top-N candidates re-scored three ways.

    python benchmarks/reranker_cost.py CHECKPOINT [--top-n 20] [--queries 16] [--rounds 3] [--out FILE]

- decode + grids + re-ranker: what the service does today (the index stores pooled vectors only): the
  candidates' files decoded, their patch grids computed by the image tower, then the re-ranker;
- grids + re-ranker: the photos already decoded in memory;
- stored grids: the patch grids computed at index time and read back, so only the re-ranker runs.

Medians over rounds x queries (Flickr8k val photos as candidates); the checkpoint's own training info
gives R@1 without and with the re-ranker on each val set.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "flickr8k"

QUERIES = [
    "a dog running on the beach",
    "two children playing football in a park",
    "a man in a red jacket climbs a rock wall",
    "people sitting at a table in a restaurant",
    "a red car in a parking lot",
    "a plate of food on a table",
    "people at a conference",
    "a laptop on a desk",
    "a girl with a pink umbrella in the rain",
    "a cyclist on a city street",
    "a group of people posing for a photo",
    "a building with a glass facade",
    "a black and white cat asleep on a sofa",
    "snowy mountains at sunset",
    "a whiteboard with notes in a meeting room",
    "a boy jumping into a swimming pool",
]


def median_ms(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from models.checkpoint import load_checkpoint
    from models.images import decode_photo
    from models.registry import create_encoder
    from models.training.data import load_captioned_photos

    torch.set_num_threads(os.cpu_count() or 1)
    encoder = create_encoder(str(args.checkpoint), device="cpu").apply_preset()  # type: ignore[attr-defined]
    reranker = encoder.reranker
    if reranker is None:
        sys.exit(f"{args.checkpoint} has no re-ranker: train one with `photosearch train-reranker`")
    model = encoder.model
    paths = [p.path for p in load_captioned_photos(SHARED, "val")[: args.top_n]]
    images = [decode_photo(p).image for p in paths]
    with torch.inference_mode():
        pixels = torch.stack([reranker.preprocess(img) for img in images])
        grids = model.image_tower.forward_grid(pixels)  # what an index would store per photo
    scores = [0.0] * len(images)  # the candidates' ranking scores: their values do not change the cost
    queries = QUERIES[: args.queries]
    for query in queries[:2]:  # warm-up
        reranker.rerank(query, images, scores)

    def each(step: Callable[[str], object]) -> Callable[[], object]:
        return lambda: [step(q) for q in queries]

    def stored(query: str) -> object:
        with torch.inference_mode():
            return model.rerank_logits([query] * len(grids), grids, torch.tensor(scores))

    n = len(queries)
    rows = {
        "text query (dual encoder alone)": median_ms(each(lambda q: encoder.encode_texts([q])), args.rounds)
        / n,
        "decode + grids + re-ranker": median_ms(
            each(lambda q: reranker.rerank(q, [decode_photo(p).image for p in paths], scores)), args.rounds
        )
        / n,
        "grids + re-ranker (decoded)": median_ms(
            each(lambda q: reranker.rerank(q, images, scores)), args.rounds
        )
        / n,
        "stored grids: re-ranker alone": median_ms(each(stored), args.rounds) / n,
    }
    info = load_checkpoint(args.checkpoint).info.get("reranker", {})
    lines = [
        f"# Re-ranker cost per text query: {args.checkpoint.name}, top {len(paths)}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} on the CPU; "
        f"{len(queries)} queries x {args.rounds} rounds, medians; candidates: Flickr8k val photos "
        f"({reranker.preprocess.image_size} px grids).",
        "",
        "| step | ms per query | x text query |",
        "|---|---|---|",
    ]
    base = rows["text query (dual encoder alone)"]
    lines += [f"| {name} | {ms:.1f} | {ms / base:.1f} |" for name, ms in rows.items()]
    if info:
        lines += ["", "| val set | T→I R@1 without | with | I→T R@1 |", "|---|---|---|---|"]
        for name, without in info["val_without"].items():
            with_ = info["val_with"][name]
            lines.append(
                f"| {name} | {without['t2i_r1']:.1f} | {with_['t2i_r1']:.1f} | {without['i2t_r1']:.1f} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
