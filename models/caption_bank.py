"""A model's caption bank: the captions it was trained on, so any photo can be annotated.

A company's photos come without captions, yet photo→caption annotation needs captions to choose from.
A checkpoint may ship the texts of its training captions in a small sidecar file beside it
(`<checkpoint stem>.captions.txt.gz`: a header of `# key: value` lines, a blank line, then one
caption a line). Their vectors are too large to ship and depend only on the checkpoint, so they are
computed once through the encoder's text path and cached, keyed by the model key and the hashes of
the checkpoint and the sidecar: a changed checkpoint or sidecar never meets a stale cache.
A checkpoint without a sidecar (open_clip weights, older checkpoints) simply has no bank.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.encoder import Encoder
from models.errors import InvalidInputError

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".captions.txt.gz"
FORMAT = "photosearch-caption-bank/1"
EMBED_CHUNK = 512  # captions embedded per step: the progress callback hears of each
Progress = Callable[[int, int], None]  # (captions embedded so far, all of them)


class CaptionBankError(InvalidInputError):
    """A sidecar file that is not a caption bank."""


def sidecar_path(checkpoint: Path) -> Path:
    """joint-default.safetensors → joint-default.captions.txt.gz beside it."""
    stem = checkpoint.name.removesuffix(".safetensors")
    return checkpoint.with_name(stem + SIDECAR_SUFFIX)


def unique_texts(texts: Iterable[str]) -> list[str]:
    """Whitespace normalised, empty ones dropped, each text once, in first-seen order."""
    return list(dict.fromkeys(t for t in (" ".join(text.split()) for text in texts) if t))


def write_sidecar(path: Path, texts: Iterable[str], header: dict[str, str]) -> Path:
    """Write the texts (unique, whitespace normalised) with a header (source, attribution, ...),
    atomically; gzip without a timestamp, so the same captions give the same file (and cache key)."""
    captions = unique_texts(texts)
    lines = [f"# format: {FORMAT}", f"# captions: {len(captions)}"]
    lines += [f"# {key}: {' '.join(value.split())}" for key, value in header.items()]
    body = "\n".join([*lines, "", *captions, ""]).encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as zipped:
        zipped.write(body)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class SidecarFile:
    path: Path
    header: dict[str, str]
    texts: list[str]
    digest: str  # sha256 of the file's bytes


def read_sidecar(path: Path) -> SidecarFile:
    """The header and captions of a sidecar; CaptionBankError when it is not one."""
    data = path.read_bytes()
    try:
        text = gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CaptionBankError(f"{path} is not a gzipped UTF-8 caption bank: {exc}") from exc
    head, _, body = text.partition("\n\n")
    header = dict(line[2:].partition(": ")[::2] for line in head.splitlines() if line.startswith("# "))
    if header.get("format") != FORMAT:
        raise CaptionBankError(
            f"{path} is not a caption bank (format {header.get('format')!r}, want {FORMAT!r})"
        )
    texts = [line for line in body.splitlines() if line.strip()]
    return SidecarFile(path, header, texts, hashlib.sha256(data).hexdigest())


@dataclass
class CaptionBank:
    """The bank's texts and their unit vectors as the encoder embeds them; offsets: each caption's
    hubness offset against the model's query bank (models/query_bank.py), None without one."""

    texts: list[str]
    vectors: np.ndarray  # (n, dim) float32 unit vectors
    offsets: np.ndarray | None = None  # (n,) float32

    def __len__(self) -> int:
        return len(self.texts)

    def nearest(self, vector: np.ndarray, k: int) -> list[tuple[int, float, float | None]]:
        """(position, cosine, cosine − offset or None) of the k best captions for a (dim,) query:
        ordered by cosine − offset when there are offsets (as collection captions are), else cosine."""
        if k <= 0 or not self.texts:
            return []
        scores = self.vectors @ np.asarray(vector, dtype=np.float32)  # (n,)
        ranked = scores if self.offsets is None else scores - self.offsets
        k = min(k, len(self.texts))
        best = np.argpartition(-ranked, k - 1)[:k]
        best = best[np.argsort(-ranked[best], kind="stable")]
        ranks = None if self.offsets is None else ranked
        return [(int(i), float(scores[i]), None if ranks is None else float(ranks[i])) for i in best]


def embed_bank(encoder: Encoder, texts: Sequence[str], progress: Progress | None = None) -> CaptionBank:
    """The texts' vectors through the encoder's text path, chunk by chunk (progress after each), and
    their hubness offsets when the model has a query bank."""
    chunks = []
    for start in range(0, len(texts), EMBED_CHUNK):
        chunks.append(encoder.encode_texts(list(texts[start : start + EMBED_CHUNK])))
        if progress is not None:
            progress(min(start + EMBED_CHUNK, len(texts)), len(texts))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), dtype=np.float32)
    bank = encoder.query_bank
    offsets = None if bank is None else bank.caption_offsets(vectors).astype(np.float32)
    return CaptionBank(list(texts), vectors.astype(np.float32, copy=False), offsets)


def cache_path(cache_dir: Path, encoder: Encoder, sidecar: SidecarFile) -> Path:
    """One file per (model key, checkpoint hash, sidecar hash), and per int8 text graph when the captions
    are embedded through one (its file name says how it was quantized)."""
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in encoder.name)
    fingerprint = f"{encoder.key}|{encoder.checkpoint_digest}|{sidecar.digest}"
    text_graph = getattr(encoder, "text_session", None)  # None: captions embedded in PyTorch
    if getattr(encoder, "quantize", "none") in ("text", "all") and text_graph is not None:
        fingerprint += f"|{text_graph.path.name}"
    key = hashlib.sha256(fingerprint.encode()).hexdigest()
    return cache_dir / "caption-banks" / f"{safe_name}-{key[:24]}.npz"


def save_cached(path: Path, bank: CaptionBank) -> None:
    """Vectors (and offsets) to `path` atomically: a temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        if bank.offsets is None:
            np.savez(handle, vectors=bank.vectors)
        else:
            np.savez(handle, vectors=bank.vectors, offsets=bank.offsets)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_cached(path: Path, encoder: Encoder, texts: list[str]) -> CaptionBank | None:
    """The cached bank, or None when there is none; a file that is unreadable or does not fit the
    texts and the model is logged as a warning and left to be recomputed."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            vectors = np.asarray(stored["vectors"], dtype=np.float32)
            offsets = np.asarray(stored["offsets"], dtype=np.float32) if "offsets" in stored else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("caption bank cache %s is unreadable (%s): computing it again", path, exc)
        return None
    wants_offsets = encoder.query_bank is not None
    if (
        vectors.shape != (len(texts), encoder.dim)
        or (offsets is not None) != wants_offsets
        or (offsets is not None and offsets.shape != (len(texts),))
    ):
        log.warning("caption bank cache %s does not fit the model's bank: computing it again", path)
        return None
    return CaptionBank(texts, vectors, offsets)


def encoder_sidecar(encoder: Encoder) -> Path | None:
    """The sidecar beside the encoder's checkpoint file, if it has both."""
    checkpoint = encoder.checkpoint_path
    if checkpoint is None:
        return None
    path = sidecar_path(checkpoint)
    return path if path.is_file() else None


def cached_caption_bank(encoder: Encoder, cache_dir: Path) -> CaptionBank | None:
    """The bank if its vectors are already cached (no embedding); None otherwise."""
    sidecar_file = encoder_sidecar(encoder)
    if sidecar_file is None:
        return None
    sidecar = read_sidecar(sidecar_file)
    return load_cached(cache_path(cache_dir, encoder, sidecar), encoder, sidecar.texts)


def prepare_caption_bank(
    encoder: Encoder, cache_dir: Path, progress: Progress | None = None
) -> CaptionBank | None:
    """The model's caption bank, from the cache or embedded now and cached; None without a sidecar."""
    sidecar_file = encoder_sidecar(encoder)
    if sidecar_file is None:
        return None
    sidecar = read_sidecar(sidecar_file)
    path = cache_path(cache_dir, encoder, sidecar)
    bank = load_cached(path, encoder, sidecar.texts)
    if bank is None:
        bank = embed_bank(encoder, sidecar.texts, progress)
        save_cached(path, bank)
        log.info("caption bank of %s: %d captions embedded and cached in %s", encoder.key, len(bank), path)
    return bank
