"""Train every joint-model approach in the zoo on a fixed CPU budget and write benchmarks/MODELS.md.

    .venv/bin/python benchmarks/models_zoo.py [--data ../shared/data/flickr8k] [--only NAME ...]

Each run trains on the train split (early stopping on val R@sum), then is measured on the whole val
split (1,000 photos, 5,000 captions) through the public Encoder API. Results accumulate in
data/zoo/results.json (a finished run is not trained again) and the table is rewritten after every run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.registry import create_encoder, load_joint_config  # noqa: E402
from models.training.data import load_captioned_photos  # noqa: E402
from models.training.evaluate import evaluate_encoder  # noqa: E402
from models.training.options import TrainOptions  # noqa: E402
from models.training.train import train_joint  # noqa: E402

FROZEN_EPOCHS = 8  # text tower from scratch over cached EfficientNet features: ~15-30 s an epoch
SHORT_EPOCHS = 3  # the loss comparison and the re-ranker's dual stage: what this session's time allowed
SCRATCH_EPOCHS = 1  # the scratch CNN decodes and trains on every photo: ~4-5 min an epoch on 2 shared cores
TEXTCNN_EPOCHS = 30  # joint-textcnn's smaller CNN at 112 px: ~45 s an epoch
# (run name, config, loss override, epochs)
RUNS: list[tuple[str, str, str | None, int]] = [
    ("joint-bow-captions", "joint-bow-captions", None, FROZEN_EPOCHS),
    ("joint-transformer", "joint-transformer", None, FROZEN_EPOCHS),
    ("joint-transformer + vse_hardest", "joint-transformer", "vse_hardest", SHORT_EPOCHS),
    ("joint-transformer + triplet_shifted", "joint-transformer", "triplet_shifted", SHORT_EPOCHS),
    ("joint-transformer + cosine", "joint-transformer", "cosine", SHORT_EPOCHS),
    ("joint-rerank", "joint-rerank", None, SHORT_EPOCHS),
    ("joint-scratch-bigru", "joint-scratch-bigru", None, SCRATCH_EPOCHS),
    ("joint-scratch-bilstm", "joint-scratch-bilstm", None, SCRATCH_EPOCHS),
    ("joint-textcnn", "joint-textcnn", None, TEXTCNN_EPOCHS),
]
OUT = Path("data/zoo")
MD = Path(__file__).with_name("MODELS.md")


def machine() -> str:
    cores = len(__import__("os").sched_getaffinity(0))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {cores} CPU cores (shared), {gpu}, torch {torch.__version__}"


def caption_report(encoder: Any, data: Path) -> dict[str, float]:
    """Photos found through their captions: each val caption queries the other 4,999 captions; a photo
    ranks by its best remaining caption (leave-one-out, so the query never finds itself)."""
    photos = load_captioned_photos(data, "val")
    texts = [c for p in photos for c in p.captions]
    owners = np.array([i for i, p in enumerate(photos) for _ in p.captions])
    vectors = encoder.encode_texts(texts)
    sims = vectors @ vectors.T  # (n_txt, n_txt)
    np.fill_diagonal(sims, -np.inf)
    per_photo = np.full((len(texts), len(photos)), -np.inf, dtype=np.float32)
    for column in range(len(texts)):
        np.maximum(per_photo[:, owners[column]], sims[:, column], out=per_photo[:, owners[column]])
    true = per_photo[np.arange(len(texts)), owners]
    ranks = (per_photo > true[:, None]).sum(axis=1) + 1
    return {f"r{k}": 100.0 * float((ranks <= k).mean()) for k in (1, 5, 10)} | {
        "medr": float(np.median(ranks))
    }


def run_one(name: str, config_name: str, loss: str | None, epochs: int, data: Path) -> dict[str, Any]:
    config = load_joint_config(config_name)
    scratch_cnn = config.image_tower.type == "resnet_scratch"
    opts = TrainOptions.from_config(
        config,
        epochs=epochs,
        loss=loss,
        device="cuda" if torch.cuda.is_available() else "cpu",
        cache_dir=Path("data/cache"),
        workers=1 if scratch_cnn else 0,
    )
    out = OUT / f"{name.replace(' + ', '-')}.safetensors"
    started = time.perf_counter()
    result = train_joint(config, data, out, opts)
    train_seconds = time.perf_counter() - started
    encoder = create_encoder(str(out), device=opts.device)
    # A frozen image tower's val features are the cached tower outputs the best epoch was measured on,
    # so its training report is the checkpoint's; the scratch CNN is measured again from the files.
    report = evaluate_encoder(encoder, data, "val") if scratch_cnn else result.report
    row: dict[str, Any] = {
        "name": name,
        "config": config_name,
        "loss": opts.loss,
        "epochs": epochs,
        "best_epoch": result.best_epoch,
        "val": report.to_dict(),
        "train_seconds": round(train_seconds, 1),
        "checkpoint": str(out),
        "first_loss": result.history[0].loss,
        "last_loss": result.history[-1].loss,
    }
    from models.checkpoint import load_checkpoint

    info = load_checkpoint(out).info
    if "reranker" in info:
        row["reranked"] = next(iter(info["reranker"]["val_with"].values()))  # the first val set
    if config.loss.objective == "captions":
        row["through_captions"] = caption_report(encoder, data)
    return row


def _cells(v: dict[str, float]) -> str:
    return (
        f"{v['t2i_r1']:.1f} | {v['t2i_r5']:.1f} | {v['t2i_r10']:.1f} | {v['t2i_medr']:g} | "
        f"{v['i2t_r1']:.1f} | {v['i2t_r5']:.1f} | {v['i2t_r10']:.1f} | {v['i2t_medr']:g} | {v['rsum']:.1f}"
    )


def write_markdown(rows: list[dict[str, Any]], note: str) -> None:
    lines = [
        "# Joint model zoo: every approach, measured the same way",
        "",
        "Written by `benchmarks/models_zoo.py`. Trained on Flickr8k train (6,091 photos), measured on the",
        "whole val split (1,000 photos, 5,000 captions): scratch-CNN models through the public Encoder API,",
        "frozen-EfficientNet models on the cached tower outputs of the same photos (the same numbers: 166.74",
        "both ways for joint-bow-captions). T→I: a caption finds its photo among 1,000; I→T: a photo finds",
        "any of its 5 captions among 5,000. MedR = median rank.",
        "",
        f"Machine: {machine()}.",
        "",
        note,
        "",
        "| model | loss | epochs (best) | T→I R@1 | R@5 | R@10 | MedR "
        "| I→T R@1 | R@5 | R@10 | MedR | R@sum | train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row for row in (checkpoint_row(name, path) for name, path in PRETRAINED_ROWS) if row]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['loss']} | {r['epochs']} ({r['best_epoch']}) | {_cells(r['val'])} "
            f"| {r['train_seconds'] / 60:.1f} min |"
        )
        if "reranked" in r:
            lines.append(f"| {r['name']}, re-ranked top-10 | | | {_cells(r['reranked'])} | (included) |")
    extra = [r for r in rows if "through_captions" in r]
    if extra:
        lines += [
            "",
            "Caption-only retrieval (photos found through their other captions, leave-one-out):",
            "",
        ]
        lines += ["| model | T→I R@1 | R@5 | R@10 | MedR |", "|---|---|---|---|---|"]
        for r in extra:
            c = r["through_captions"]
            lines.append(f"| {r['name']} | {c['r1']:.1f} | {c['r5']:.1f} | {c['r10']:.1f} | {c['medr']:g} |")
    lines += loss_comparison(rows)
    MD.write_text("\n".join(lines) + "\n")


PRETRAINED_ROWS = (  # trained by `photosearch train`; their checkpoints carry their val figures
    (
        "joint-default (shipped; EfficientNet-Lite1 + MPNet, one stage of 3 epochs at 256 px from "
        "joint-default-v6's image side, Flickr8k weight 2, CC3M 0.8)",
        Path("models/checkpoints/joint-default.safetensors"),
    ),
    (
        "joint-default-v6 (shipped for comparison; EfficientNet-Lite1 + MiniLM, stage 5: 2 more epochs at "
        "256 px from joint-lite1, Flickr8k weight 3, CC3M 0.5)",
        Path("models/checkpoints/joint-default-v6.safetensors"),
    ),
    (
        "joint-default-v5 (shipped for comparison; Lite0 stage 5: 2 more epochs at 288 px from stage 4, both "
        "sets at weight 1, hard negatives 0.5, caption word dropout 0.1)",
        Path("models/checkpoints/joint-default-v5.safetensors"),
    ),
    (
        "joint-default-v4 (shipped for comparison; stage 4: 2 more epochs at 288 px from stage 3 on "
        "Flickr8k + CC3M at weight 0.6)",
        Path("models/checkpoints/joint-default-v4.safetensors"),
    ),
    (
        "joint-flickr8k (shipped for comparison; stage 3: 3 more epochs at 288 px from stage 2, new crops)",
        Path("models/checkpoints/joint-flickr8k.safetensors"),
    ),
    (
        "joint-finetune-top2 (top 2 blocks of each tower tuned; the previous default)",
        Path("data/zoo/joint-finetune-top2.safetensors"),
    ),
    (
        "joint-frozen (frozen towers, trained heads)",
        Path("models/checkpoints/joint-frozen.safetensors"),
    ),
)


def _row_name(line: str) -> str:
    return line.split(" | ")[0].removeprefix("| ")


def refresh_pretrained_rows() -> None:
    """Rewrite only the rows of PRETRAINED_ROWS in the existing MODELS.md from their checkpoints (a row
    whose checkpoint is not on this machine keeps its line); every other row stays as it was."""
    lines = MD.read_text().splitlines()
    # the zoo table (not the other tables beside it): its head names the loss column
    header = 1 + next(i for i, line in enumerate(lines) if line.startswith("| model | loss |"))
    end = next((i for i in range(header + 1, len(lines)) if not lines[i].startswith("|")), len(lines))
    table = lines[header + 1 : end]  # this table's rows only: the tables after it keep theirs
    old = {_row_name(line): line for line in table if line.startswith("| joint-")}
    rows = [checkpoint_row(name, path) or old.get(name) for name, path in PRETRAINED_ROWS]
    replaced = {name for name, _ in PRETRAINED_ROWS}
    replaced |= {
        name
        for name in old
        if name.startswith(
            (
                "joint-default (",
                "joint-default-v6 (",
                "joint-default-v5 (",
                "joint-default-v4 (",
                "joint-flickr8k (",
                "joint-frozen (",
            )
        )
    }
    rest = [line for line in table if _row_name(line) not in replaced]
    refreshed = [r for r in rows if r]
    # the Lite0 model's earlier stages, listed below the shipped rows
    stages = [line for line in rest if _row_name(line).startswith("joint-default-v5 stage")]
    others = [line for line in rest if line not in stages]
    body = [*refreshed[:5], *stages, *refreshed[5:], *others]
    MD.write_text("\n".join([*lines[: header + 1], *body, *lines[end:]]) + "\n")


def checkpoint_row(name: str, path: Path) -> str | None:
    """A table row from a checkpoint's own record of its best epoch and val figures."""
    if not path.is_file():
        return None
    from models.checkpoint import load_checkpoint

    info = load_checkpoint(path).info
    options = info.get("options", {})
    val = info["val"].get("sets", {}).get("flickr8k", info["val"])  # trained on several sets: Flickr8k's
    return (
        f"| {name} | {options.get('loss', 'infonce')} | {options.get('epochs', '?')} ({info['best_epoch']}) "
        f"| {_cells(val)} | {float(info['train_seconds']) / 60:.1f} min |"
    )


def loss_comparison(rows: list[dict[str, Any]]) -> list[str]:
    """Every loss on joint-transformer, compared at the same epoch (from each run's resume file)."""
    lines = [
        "",
        f"Loss comparison on joint-transformer: val R@sum after {SHORT_EPOCHS} epochs, same seed and data:",
    ]
    lines += ["", "| loss | val R@sum |", "|---|---|"]
    for r in rows:
        resume = Path(r["checkpoint"]).with_suffix(".resume.pt")
        if r["config"] != "joint-transformer" or not resume.is_file():
            continue
        history = torch.load(resume, weights_only=False)["history"]
        at = [h["val_rsum"] for h in history if h["epoch"] == SHORT_EPOCHS]
        lines.append(f"| {r['loss']} | {at[0]:.1f} |" if at else f"| {r['loss']} | (stopped earlier) |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/flickr8k"))
    parser.add_argument("--only", nargs="*", help="run names to (re)train")
    parser.add_argument("--note", default="")
    parser.add_argument(
        "--pretrained-rows-only",
        action="store_true",
        help="only refresh the rows of the shipped (pretrained-tower) checkpoints in the existing MODELS.md",
    )
    args = parser.parse_args()
    if args.pretrained_rows_only:
        refresh_pretrained_rows()
        return
    OUT.mkdir(parents=True, exist_ok=True)
    store = OUT / "results.json"
    results: dict[str, Any] = json.loads(store.read_text()) if store.is_file() else {}
    for name, config_name, loss, epochs in RUNS:
        if (args.only and name not in args.only) or (not args.only and name in results):
            continue
        print(f"== {name}", flush=True)
        results[name] = run_one(name, config_name, loss, epochs, args.data)
        store.write_text(json.dumps(results, indent=2))
        write_markdown([results[n] for n, *_ in RUNS if n in results], args.note)
        print(json.dumps(results[name]["val"]), flush=True)
    write_markdown([results[n] for n, *_ in RUNS if n in results], args.note)


if __name__ == "__main__":
    main()
