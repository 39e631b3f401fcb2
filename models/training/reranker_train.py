"""Stage two of a joint model with a re-ranker: the dual encoder is frozen; for each caption its
top-N photos by the dual encoder are the candidates, the true photo plus hard negatives drawn from
them form one softmax, and the cross-attention re-ranker learns to put the true photo first."""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from models.checkpoint import load_checkpoint, save_checkpoint
from models.errors import InvalidInputError
from models.joint.config import JointConfig, RerankerConfig
from models.joint.model import JointModel
from models.loading import iterate_photo_batches
from models.preprocess import PreprocessConfig
from models.query_bank import QueryBank, split_bank_tensors
from models.training.data import CaptionedPhoto, TrainingSet, load_captioned_photos, load_val_sets
from models.training.evaluate import RetrievalReport, retrieval_report
from models.training.options import half_towers

log = logging.getLogger(__name__)


@torch.no_grad()
def image_grids(
    model: JointModel,
    preprocess: PreprocessConfig,
    paths: Sequence[Path],
    device: torch.device,
    workers: int = 0,
) -> torch.Tensor:
    """→ (n, C, 7, 7) float16 patch grids of the image tower (kept on the CPU)."""
    model.eval()
    grids: list[torch.Tensor] = []
    for batch in iterate_photo_batches(paths, preprocess, batch_size=32, workers=workers):
        if batch.failures:
            raise ValueError(f"photo failed to load: {batch.failures[:3]}")
        grids.append(model.image_tower.forward_grid(batch.pixels.to(device)).half().cpu())
    return torch.cat(grids)


@torch.no_grad()
def dual_vectors(
    model: JointModel, grids: torch.Tensor, texts: Sequence[str], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image vectors from the grids (a tower's pooled output is its grid's mean) and text vectors."""
    images = torch.cat(
        [model.embed_image_features(g.float().to(device).mean(dim=(2, 3))) for g in grids.split(256)]
    )  # (n_images, embed_dim)
    text = torch.cat([model.encode_text(texts[i : i + 512]) for i in range(0, len(texts), 512)])
    return images.cpu(), text.cpu()


@torch.no_grad()
def reranked_report(
    model: JointModel,
    grids: torch.Tensor,
    texts: Sequence[str],
    owners: np.ndarray,
    top_n: int,
    device: torch.device,
    bank: QueryBank | None = None,
) -> tuple[RetrievalReport, RetrievalReport]:
    """(dual encoder alone, with text→image top-N re-ranked), ranked as served: with the query bank
    when the model has one. Image→text is not re-ranked."""
    assert model.reranker is not None
    model.eval()
    images, text = dual_vectors(model, grids, texts, device)
    photo_offsets = None if bank is None else bank.photo_offsets(images.numpy())
    caption_offsets = None if bank is None else bank.caption_offsets(text.numpy())
    plain = retrieval_report(
        images.numpy(), text.numpy(), owners, image_offsets=photo_offsets, text_offsets=caption_offsets
    )
    sims = (text @ images.T).numpy()  # (n_txt, n_img), as served: less each photo's offset
    if photo_offsets is not None:
        sims -= photo_offsets[None, :]
    top_n = min(top_n, len(images))
    top = np.argsort(-sims, axis=1)[:, :top_n]  # (n_txt, top_n)
    patches = torch.cat([model.reranker.project_patches(g.float().to(device)) for g in grids.split(128)])
    for start in range(0, len(texts), 64):
        rows = np.arange(start, min(start + 64, len(texts)))
        tokens, mask = model.text_tower.forward_tokens([texts[int(r)] for r in rows])  # (b, T, d), (b, T)
        cand = torch.from_numpy(top[rows]).reshape(-1)  # (b * top_n,)
        logits = model.reranker.score(
            tokens.repeat_interleave(top_n, 0), mask.repeat_interleave(top_n, 0), patches[cand]
        )
        if model.reranker.residual:  # a correction to the served score (the bank's offset included)
            served = torch.from_numpy(sims[rows[:, None], top[rows]]).reshape(-1).to(device)
            logits = logits + model.scaled(served)
        # re-ranked candidates above everything else, in the re-ranker's order
        sims[rows[:, None], top[rows]] = 1e3 + logits.reshape(len(rows), top_n).cpu().numpy()
    return plain, dataclasses.replace(plain, **_t2i(sims, owners))  # image→text stays the dual encoder's


def _t2i(sims: np.ndarray, owners: np.ndarray) -> dict[str, Any]:
    true = sims[np.arange(len(sims)), owners]
    ranks = (sims > true[:, None]).sum(axis=1) + 1
    return {
        "t2i_r1": 100.0 * float((ranks <= 1).mean()),
        "t2i_r5": 100.0 * float((ranks <= 5).mean()),
        "t2i_r10": 100.0 * float((ranks <= 10).mean()),
        "t2i_medr": float(np.median(ranks)),
    }


def _captions(photos: Sequence[CaptionedPhoto]) -> tuple[list[str], np.ndarray]:
    texts = [c for p in photos for c in p.captions]
    return texts, np.array([i for i, p in enumerate(photos) for _ in p.captions])


def _candidate_logits(
    model: JointModel,
    hard: _HardNegatives,
    rows: torch.Tensor,
    candidates: torch.Tensor,
    device: torch.device,
) -> torch.Tensor:
    """Caption rows (b,), candidates (b, c) photo rows → (b, c) the re-ranker's scores of them."""
    assert model.reranker is not None
    b, c = candidates.shape
    with torch.no_grad():  # dual encoder frozen: no gradient into it
        tokens, mask = model.text_tower.forward_tokens([hard.texts[int(r)] for r in rows])
    pairs = hard.grids[candidates.reshape(-1)].float().to(device)  # (b * c, C, h, w)
    logits = model.reranker(tokens.repeat_interleave(c, 0), mask.repeat_interleave(c, 0), pairs)
    if model.reranker.residual:  # a correction to the score the search ranks by
        flat = candidates.reshape(-1)
        text = hard.text_vectors[rows].repeat_interleave(c, 0)
        served = (text * hard.image_vectors[flat]).sum(dim=-1) - hard.photo_offsets[flat]
        logits = logits + model.scaled(served.to(device))
    return logits.reshape(b, c)


@torch.no_grad()
def _held_out_r1(model: JointModel, check: _HardNegatives, top_n: int, device: torch.device) -> float:
    """Text→photo R@1 over held-out captions, each one's top-N photos (by the dual encoder, within the
    held-out photos) re-ranked: a caption counts when the re-ranker puts its own photo first."""
    assert model.reranker is not None
    model.reranker.eval()
    hits = 0
    for start in range(0, len(check.texts), 64):
        rows = torch.arange(start, min(start + 64, len(check.texts)))
        candidates = check.ranked[rows, :top_n]
        picked = _candidate_logits(model, check, rows, candidates, device).argmax(1).cpu()
        best = candidates[torch.arange(len(rows)), picked]
        hits += int((best.numpy() == check.owners[rows.numpy()]).sum())
    return 100.0 * hits / max(len(check.texts), 1)


def train_reranker(
    model: JointModel,
    config: JointConfig,
    train_photos: list[CaptionedPhoto],
    vals: dict[str, list[CaptionedPhoto]],
    opts: Any,
    bank: QueryBank | None = None,
) -> dict[str, Any]:
    """Train model.reranker in place on hard negatives; → info with each val set's figures without and
    with it (ranked with `bank`, the model's query bank, when given)."""
    assert model.reranker is not None and config.reranker is not None
    spec, device, started = config.reranker, torch.device(opts.device), time.perf_counter()
    photos = train_photos[: spec.train_photos]
    held = round(len(photos) * spec.holdout)
    if spec.holdout and not 2 <= held <= len(photos) - 2:
        raise InvalidInputError(
            f"a holdout of {spec.holdout} leaves {held} of {len(photos)} train photos to choose the epoch "
            "with; it needs at least 2 there and 2 to train on"
        )
    check = _hard_negatives(model, config, photos[:held], spec, device, opts.workers, bank) if held else None
    hard = _hard_negatives(model, config, photos[held:], spec, device, opts.workers, bank)
    losses, held_out = _fit(model, hard, spec, opts, device, check)
    without, with_ = {}, {}
    for name, val_photos in vals.items():
        val_grids = image_grids(model, config.preprocess, [p.path for p in val_photos], device, opts.workers)
        val_texts, val_owners = _captions(val_photos)
        plain, reranked = reranked_report(
            model, val_grids, val_texts, val_owners, min(spec.top_n, len(val_photos)), device, bank
        )
        without[name], with_[name] = plain.to_dict(), reranked.to_dict()
        log.info("re-ranker on %s: T→I R@1 %.1f → %.1f", name, plain.t2i_r1, reranked.t2i_r1)
    return {
        "val_without": without,
        "val_with": with_,
        "train_photos": len(photos) - held,
        "held_out_photos": held,
        **held_out,
        "loss_per_epoch": [float(np.mean(epoch)) for epoch in losses],
        "loss_first": float(np.mean(losses[0])),  # mean loss of the first epoch
        "loss_last": float(np.mean(losses[-1])),  # and of the last
        "seconds": round(time.perf_counter() - started, 1),
    }


def _hard_negatives(
    model: JointModel,
    config: JointConfig,
    photos: Sequence[CaptionedPhoto],
    spec: RerankerConfig,
    device: torch.device,
    workers: int,
    bank: QueryBank | None = None,
) -> _HardNegatives:
    """The photos' patch grids, their captions and each caption's top candidates among them, ranked as
    the search ranks them (less each photo's query-bank offset when the model has a bank)."""
    top_n = min(spec.top_n, len(photos) - 1)  # tiny sets: never more candidates than wrong photos
    grids = image_grids(model, config.preprocess, [p.path for p in photos], device, workers)
    texts, owners = _captions(photos)
    images, text = dual_vectors(model.eval(), grids, texts, device)
    offsets = (
        torch.zeros(len(images)) if bank is None else torch.from_numpy(bank.photo_offsets(images.numpy()))
    )
    offsets = offsets.to(images.dtype)
    served = text @ images.T - offsets[None, :]  # (n_txt, n_photos)
    ranked = torch.argsort(-served, dim=1)[:, : top_n + 1]  # (n_txt, top_n + 1) hard candidates
    return _HardNegatives(grids, texts, owners, ranked, min(spec.negatives, top_n), images, text, offsets)


@dataclasses.dataclass
class _HardNegatives:
    grids: torch.Tensor  # (n_photos, C, 7, 7) float16 patch grids
    texts: list[str]
    owners: np.ndarray  # (n_txt,) photo of each caption
    ranked: torch.Tensor  # (n_txt, top_n + 1) the dual encoder's best photos per caption
    negatives: int
    # the dual encoder's vectors and each photo's query-bank offset (zeros without a bank): a residual
    # re-ranker corrects cosine − offset, the score the search ranks by
    image_vectors: torch.Tensor  # (n_photos, embed_dim)
    text_vectors: torch.Tensor  # (n_txt, embed_dim)
    photo_offsets: torch.Tensor  # (n_photos,)


def _fit(
    model: JointModel,
    hard: _HardNegatives,
    spec: RerankerConfig,
    opts: Any,
    device: torch.device,
    check: _HardNegatives | None = None,
) -> tuple[list[list[float]], dict[str, Any]]:
    """The re-ranker's epochs (the dual encoder frozen) → each epoch's step losses and, with held-out
    photos (`check`), their re-ranked R@1 before training and after each epoch, the best epoch's
    weights kept (0: the untrained state). The val split is measured once, after this."""
    assert model.reranker is not None
    top_n = 0 if check is None else min(spec.top_n, check.ranked.shape[1])
    curve: list[float] = []
    best_state: dict[str, torch.Tensor] = {}
    if check is not None:
        curve.append(_held_out_r1(model, check, top_n, device))
        best_state = _snapshot(model.reranker)
    for param in model.parameters():
        param.requires_grad = False
    params = list(model.reranker.parameters())
    for param in params:
        param.requires_grad = True
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=opts.weight_decay)
    generator = torch.Generator().manual_seed(opts.seed)
    losses: list[list[float]] = []
    for epoch in range(spec.epochs):
        model.reranker.train()
        epoch_losses: list[float] = []
        order = torch.randperm(len(hard.texts), generator=generator)[: spec.captions_per_epoch]
        for start in range(0, len(order), spec.batch_size):
            rows = order[start : start + spec.batch_size]
            cands = torch.stack(
                [_candidates(int(r), hard.ranked[r], hard.owners, hard.negatives, generator) for r in rows]
            )
            logits = _candidate_logits(model, hard, rows, cands, device)  # the true photo first
            loss = F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long, device=device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_losses.append(loss.item())
        losses.append(epoch_losses)
        log.info("re-ranker epoch %d: loss %.3f", epoch + 1, float(np.mean(epoch_losses)))
        if check is not None:
            curve.append(_held_out_r1(model, check, top_n, device))
            log.info("re-ranker epoch %d: held-out T→I R@1 %.1f", epoch + 1, curve[-1])
            if curve[-1] > max(curve[:-1]):
                best_state = _snapshot(model.reranker)
    if check is None:
        return losses, {}
    kept = int(np.argmax(curve))  # the first of equals: the earlier, less fitted state
    model.reranker.load_state_dict(best_state)
    dual = 100.0 * float((check.ranked[:, 0].numpy() == check.owners).mean())
    return losses, {"held_out_dual_r1": dual, "held_out_r1": curve, "kept_epoch": kept}


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the module's weights as they are now (training goes on changing the originals)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _candidates(
    row: int, ranked: torch.Tensor, owners: np.ndarray, negatives: int, generator: torch.Generator
) -> torch.Tensor:
    """The true photo, then `negatives` wrong photos drawn from the dual encoder's top candidates."""
    true = int(owners[row])
    wrong = ranked[ranked != true]
    pick = wrong[torch.randperm(len(wrong), generator=generator)[:negatives]]
    return torch.cat([torch.tensor([true]), pick])


def rerank_checkpoint(
    checkpoint: Path, data: Sequence[TrainingSet], out: Path, spec: RerankerConfig, opts: Any
) -> dict[str, Any]:
    """A trained joint checkpoint → `out`: the same dual encoder (weights, query bank, test-time settings,
    caption bank) with a re-ranker trained over its own top candidates on the sets' train photos (spread
    over the sets by weight); → the re-ranker's info, each val set measured without and with it."""
    from models.caption_bank import sidecar_path

    stored = load_checkpoint(checkpoint)
    if not isinstance(stored.config, JointConfig):
        raise InvalidInputError(
            f"{checkpoint} is a {stored.config.family!r} checkpoint; re-rankers are for joint ones"
        )
    config = stored.config.replace(reranker=None)
    model = JointModel(config)
    if not hasattr(model.text_tower, "forward_tokens"):
        raise InvalidInputError(
            f"{checkpoint}: its text tower gives no token states for a re-ranker to attend with"
        )
    state = {k: v for k, v in split_bank_tensors(stored.state_dict).items() if not k.startswith("reranker.")}
    model.load_checkpoint_state(state)
    bank = QueryBank.from_checkpoint(config.query_bank, stored.state_dict)
    model = model.to(torch.device(opts.device)).add_reranker(spec)
    photos = _spread(data, spec.train_photos, opts.seed)
    info = train_reranker(model, model.config, photos, load_val_sets(data), opts, bank)
    tensors = half_towers({k: v.detach().cpu() for k, v in model.checkpoint_state().items()})
    tensors.update(bank.tensors() if bank is not None else {})
    save_checkpoint(out, config=model.config, state_dict=tensors, info={**stored.info, "reranker": info})
    if sidecar_path(checkpoint).is_file() and sidecar_path(out) != sidecar_path(checkpoint):
        shutil.copyfile(sidecar_path(checkpoint), sidecar_path(out))  # the same captions, the same bank
    return info


def _spread(sets: Sequence[TrainingSet], total: int, seed: int) -> list[CaptionedPhoto]:
    """`total` train photos drawn from the sets in proportion to their weights, in a shuffled order."""
    rng = random.Random(seed)
    weights = sum(s.weight for s in sets)
    photos: list[CaptionedPhoto] = []
    for s in sets:
        split = load_captioned_photos(s.path, "train")
        photos += rng.sample(split, min(len(split), round(total * s.weight / weights)))
    rng.shuffle(photos)
    return photos
