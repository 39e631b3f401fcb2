"""Retrieval metrics over a captioned gallery: R@1/5/10 and median rank, both directions."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.progress import Progress

from models.encoder import Encoder
from models.loading import iterate_photo_batches
from models.training.data import load_captioned_photos

if TYPE_CHECKING:
    from models.query_bank import QueryBank


@dataclass
class RetrievalReport:
    t2i_r1: float
    t2i_r5: float
    t2i_r10: float
    t2i_medr: float
    i2t_r1: float
    i2t_r5: float
    i2t_r10: float
    i2t_medr: float
    images: int
    captions: int

    @property
    def rsum(self) -> float:
        return self.t2i_r1 + self.t2i_r5 + self.t2i_r10 + self.i2t_r1 + self.i2t_r5 + self.i2t_r10

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "rsum": self.rsum}

    def summary(self) -> str:
        return f"T→I R@1 {self.t2i_r1:.1f}, I→T R@1 {self.i2t_r1:.1f}"

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> RetrievalReport:
        """Inverse of to_dict (the derived rsum is dropped)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})  # type: ignore[arg-type]

    def markdown(self, title: str = "") -> str:
        head = "| model | T→I R@1 | R@5 | R@10 | MedR | I→T R@1 | R@5 | R@10 | MedR | R@sum |"
        sep = "|---|---|---|---|---|---|---|---|---|---|"
        row = (
            f"| {title} | {self.t2i_r1:.1f} | {self.t2i_r5:.1f} | {self.t2i_r10:.1f} | {self.t2i_medr:g} "
            f"| {self.i2t_r1:.1f} | {self.i2t_r5:.1f} | {self.i2t_r10:.1f} | {self.i2t_medr:g} "
            f"| {self.rsum:.1f} |"
        )
        return "\n".join([head, sep, row])

    def write(self, json_path: Path, title: str = "") -> None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"model": title, **self.to_dict()}, indent=2))
        json_path.with_suffix(".md").write_text(self.markdown(title) + "\n")


@dataclass
class SetReports:
    """Figures of several val sets, each measured on its own gallery; training picks the epoch by the
    sum of their R@sums, so no set's quality is traded away unseen."""

    reports: dict[str, RetrievalReport]

    @property
    def rsum(self) -> float:
        return sum(r.rsum for r in self.reports.values())

    @property
    def t2i_r1(self) -> float:
        return float(np.mean([r.t2i_r1 for r in self.reports.values()]))

    @property
    def i2t_r1(self) -> float:
        return float(np.mean([r.i2t_r1 for r in self.reports.values()]))

    def summary(self) -> str:
        return "; ".join(f"{name} {r.summary()}" for name, r in self.reports.items())

    def to_dict(self) -> dict[str, Any]:
        return {"rsum": self.rsum, "sets": {name: r.to_dict() for name, r in self.reports.items()}}

    def markdown(self, title: str = "") -> str:
        tables = [
            r.markdown(f"{title} — {name}".strip(" —")).splitlines() for name, r in self.reports.items()
        ]
        return "\n".join(tables[0] + [table[2] for table in tables[1:]])

    def write(self, json_path: Path, title: str = "") -> None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"model": title, **self.to_dict()}, indent=2))
        json_path.with_suffix(".md").write_text(self.markdown(title) + "\n")


ValReport = RetrievalReport | SetReports


def val_report(reports: dict[str, RetrievalReport]) -> ValReport:
    """One val set's report as it is; several together."""
    return next(iter(reports.values())) if len(reports) == 1 else SetReports(reports)


def report_from_dict(values: dict[str, Any]) -> ValReport:
    """Inverse of either report's to_dict."""
    if "sets" in values:
        return SetReports({name: RetrievalReport.from_dict(r) for name, r in values["sets"].items()})
    return RetrievalReport.from_dict(values)


def retrieval_report(
    image_vectors: np.ndarray,
    text_vectors: np.ndarray,
    text_to_image: np.ndarray,
    chunk: int = 1024,
    *,
    image_offsets: np.ndarray | None = None,
    text_offsets: np.ndarray | None = None,
) -> RetrievalReport:
    """image_vectors (n_img, d), text_vectors (n_txt, d), text_to_image (n_txt,) image index of each text.

    Ranks are 1-based; image→text counts the best-ranked of an image's captions. With offsets (query-bank
    normalisation, models/query_bank.py), text→image ranks by cosine − image_offsets and image→text by
    cosine − text_offsets.
    """
    cosines = text_vectors @ image_vectors.T  # (n_txt, n_img)
    sims = cosines if image_offsets is None else cosines - image_offsets[None, :]
    n_txt, n_img = sims.shape
    true = sims[np.arange(n_txt), text_to_image]
    t2i_ranks = (sims > true[:, None]).sum(axis=1) + 1  # (n_txt,)
    i2t_ranks = np.full(n_img, np.iinfo(np.int64).max)
    sims_t = (cosines if text_offsets is None else cosines - text_offsets[:, None]).T  # (n_img, n_txt)
    for start in range(0, n_img, chunk):
        block = sims_t[start : start + chunk]  # (b, n_txt)
        order = np.argsort(-block, axis=1)
        owners = text_to_image[order]  # (b, n_txt) image of each ranked caption
        hits = owners == np.arange(start, start + len(block))[:, None]
        i2t_ranks[start : start + len(block)] = hits.argmax(axis=1) + 1
    return RetrievalReport(
        *_recalls(t2i_ranks),
        *_recalls(i2t_ranks),
        images=n_img,
        captions=n_txt,
    )


def _recalls(ranks: np.ndarray) -> tuple[float, float, float, float]:
    return (
        100.0 * float((ranks <= 1).mean()),
        100.0 * float((ranks <= 5).mean()),
        100.0 * float((ranks <= 10).mean()),
        float(np.median(ranks)),
    )


def evaluate_encoder(
    encoder: Encoder,
    data: Path,
    split: str = "val",
    *,
    batch_size: int = 64,
    workers: int = 0,
    normalise: bool = True,
) -> RetrievalReport:
    """Embed a split's photos from their files and its captions through the public Encoder API, and rank
    as the service does: with the encoder's query bank when it has one (normalise=False: plain cosine)."""
    return encoder_reports(encoder, data, split, batch_size=batch_size, workers=workers)[
        "normalised" if normalise and encoder.query_bank is not None else "cosine"
    ]


def encoder_reports(
    encoder: Encoder, data: Path, split: str = "val", *, batch_size: int = 64, workers: int = 0
) -> dict[str, RetrievalReport]:
    """{"cosine": plain ranking, and "normalised": with the query bank when the encoder has one}."""
    photos = load_captioned_photos(data, split)
    image_vectors = encode_photo_files(
        encoder, [p.path for p in photos], batch_size=batch_size, workers=workers
    )
    texts = [c for p in photos for c in p.captions]
    owners = np.array([i for i, p in enumerate(photos) for _ in p.captions])
    text_vectors = encoder.encode_texts(texts)
    reports = {"cosine": retrieval_report(image_vectors, text_vectors, owners)}
    if encoder.query_bank is not None:
        reports["normalised"] = served_report(image_vectors, text_vectors, owners, encoder.query_bank)
    return reports


def served_report(
    image_vectors: np.ndarray, text_vectors: np.ndarray, owners: np.ndarray, bank: QueryBank
) -> RetrievalReport:
    """Ranked as the service ranks: each hit's cosine less its query-bank offset."""
    return retrieval_report(
        image_vectors,
        text_vectors,
        owners,
        image_offsets=bank.photo_offsets(image_vectors),
        text_offsets=bank.caption_offsets(text_vectors),
    )


def encode_photo_files(
    encoder: Encoder, paths: list[Path], *, batch_size: int = 64, workers: int = 0
) -> np.ndarray:
    """Photos of a captioned data set, from their files, as the encoder serves them → (n, dim) vectors.
    Every one must load: a data set photo that does not is an error, not a skip."""
    vectors = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    with Progress(transient=True) as progress:
        task = progress.add_task(f"embedding {len(paths)} photos", total=len(paths))
        for batch in iterate_photo_batches(paths, encoder.preprocess, batch_size=batch_size, workers=workers):
            if batch.failures:
                raise ValueError(f"photo failed to load: {batch.failures[:3]}")
            vectors[batch.indices] = encoder.encode_image_batch(batch.pixels)
            progress.advance(task, len(batch.indices))
    return vectors
