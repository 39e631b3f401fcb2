"""Parallel decode + preprocess of photo files for batch embedding (indexer, training, evaluation).

Files are decoded in worker processes (one per core by default) a few batches ahead of the model, so
embedding never waits on files. JPEGs are decoded at reduced scale (Pillow's draft mode: libjpeg's
DCT scaling) whenever the reduced image is still at least as large as the model's input, which makes a
12 MP camera JPEG several times cheaper to decode.

Failures do not stop a batch: each item comes back with either pixels or the reason it failed. A worker
process that dies (a decoder crash) breaks only the files it may have been decoding: each of those is
retried alone in a fresh process, and the one that kills its process again is reported as skipped.
"""

from __future__ import annotations

import faulthandler
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.images import DEFAULT_MAX_PIXELS, DecodedPhoto, ImageDecodeError, decode_photo

log = logging.getLogger(__name__)

# Tests only: a worker that decodes a file whose name contains this text dies as a crashing decoder would.
CRASH_ON_ENV = "PHOTOSEARCH_TEST_CRASH_DECODE"
LOOKAHEAD_BATCHES = 2  # batches decoded ahead of the one being embedded

Transform = Callable[..., torch.Tensor]
Loaded = tuple["np.ndarray | None", "DecodedPhoto | str"]  # (pixels, light metadata) or (None, reason)


@dataclass
class LoadedBatch:
    indices: list[int]  # positions in the input list that decoded
    pixels: torch.Tensor  # (len(indices), 3, H, W)
    photos: list[DecodedPhoto]  # decoded metadata (images dropped to save memory)
    failures: list[tuple[int, str]]  # (position, reason)


@dataclass(frozen=True)
class DecodeJob:
    """What every file goes through: the model's transform, the pixel limit, the smallest side the
    model needs (the draft-mode floor; None: always decode at full size)."""

    transform: Transform
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int | None = None


def needed_side(transform: Transform) -> int | None:
    """The input size a preprocessing transform resizes to (a JPEG is never drafted below it)."""
    size = getattr(transform, "image_size", None)
    return size if isinstance(size, int) and size > 0 else None


def load_one(job: DecodeJob, path: Path) -> Loaded:
    """Decode and preprocess one file: (pixels (3, H, W) float32, metadata) or (None, reason)."""
    crash_on = os.environ.get(CRASH_ON_ENV)
    if crash_on and crash_on in path.name and multiprocessing.parent_process() is not None:
        faulthandler.disable()  # die quietly, as a crashing decoder in production would
        os.kill(os.getpid(), signal.SIGSEGV)
    try:
        decoded = decode_photo(path, job.max_pixels, job.min_side)
        pixels = job.transform(decoded.image).numpy()
    except ImageDecodeError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad photo must not stop a batch
        return None, f"could not preprocess: {type(exc).__name__}: {exc}"
    light = DecodedPhoto(
        decoded.image.resize((1, 1)),
        decoded.width,
        decoded.height,
        decoded.taken_at,
        decoded.camera_make,
        decoded.camera_model,
        decoded.format,
    )
    return pixels, light


_worker_job: DecodeJob | None = None


def _init_worker(job: DecodeJob) -> None:
    global _worker_job
    _worker_job = job
    torch.set_num_threads(1)  # the parent's model has the cores; a worker decodes one file at a time


def _load_in_worker(path: Path) -> Loaded:
    assert _worker_job is not None, "worker started without its job"
    return load_one(_worker_job, path)


def _pool(job: DecodeJob, workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_init_worker,
        initargs=(job,),
    )


def _load_alone(job: DecodeJob, path: Path) -> Loaded:
    """Retry a file in a process of its own: a second crash names this file as the cause."""
    with _pool(job, 1) as alone:
        try:
            return alone.submit(_load_in_worker, path).result()
        except BrokenProcessPool:
            log.warning("the decoder crashed on %s", path)
            return None, "the decoder crashed on this file (its worker process died)"


class _ParallelDecoder:
    """Decodes files in a process pool, LOOKAHEAD_BATCHES batches ahead of what is asked for."""

    def __init__(self, job: DecodeJob, paths: Sequence[Path], workers: int, ahead: int) -> None:
        self.job, self.paths, self.workers, self.ahead = job, list(paths), workers, ahead
        self.pool = _pool(job, workers)
        self.futures: dict[int, Future[Loaded]] = {}
        self.submitted = 0

    def results(self, positions: range) -> list[Loaded]:
        """The loaded files at `positions`, in order; submits the files after them meanwhile."""
        self._submit_until(positions.stop + self.ahead)
        return [self._result(position) for position in positions]

    def _submit_until(self, stop: int) -> None:
        while self.submitted < min(stop, len(self.paths)):
            self.futures[self.submitted] = self.pool.submit(_load_in_worker, self.paths[self.submitted])
            self.submitted += 1

    def _result(self, position: int) -> Loaded:
        try:
            return self.futures.pop(position).result()
        except BrokenProcessPool:
            self._recover(position)
            return self._result(position)

    def _recover(self, position: int) -> None:
        """A worker died: every file whose result the pool lost is retried alone; then a fresh pool."""
        log.warning("a decoding worker process died; retrying its files one by one")
        self.pool.shutdown(wait=False, cancel_futures=True)
        lost = [position] + [p for p, f in self.futures.items() if not _succeeded(f)]
        for lost_position in sorted(lost):
            done: Future[Loaded] = Future()
            done.set_result(_load_alone(self.job, self.paths[lost_position]))
            self.futures[lost_position] = done
        self.pool = _pool(self.job, self.workers)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _succeeded(future: Future[Loaded]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _batch(positions: range, loaded: list[Loaded]) -> LoadedBatch:
    items = list(zip(positions, loaded, strict=True))
    good = [(i, p, d) for i, (p, d) in items if p is not None]
    failures = [(i, d) for i, (p, d) in items if p is None and isinstance(d, str)]
    # one copy into a new array (NumPy's stack: a plain memcpy a photo, no thread pool)
    pixels = torch.from_numpy(np.stack([p for _, p, _ in good])) if good else torch.zeros(0)
    photos = [d for _, _, d in good if isinstance(d, DecodedPhoto)]
    return LoadedBatch([i for i, _, _ in good], pixels, photos, failures)


def iterate_photo_batches(
    paths: Sequence[Path],
    transform: Transform,
    *,
    batch_size: int = 32,
    workers: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft: bool = False,
) -> Iterator[LoadedBatch]:
    """Batches of decoded, preprocessed photos in input order. workers: decoding processes (0: decode
    in this process). draft: let JPEGs decode at reduced scale, never below the transform's size (the
    indexer's choice, indexer.reduced_decode; training and evaluation decode at full size)."""
    job = DecodeJob(transform, max_pixels, needed_side(transform) if draft else None)
    starts = range(0, len(paths), batch_size)
    if workers <= 0:
        for start in starts:
            positions = range(start, min(start + batch_size, len(paths)))
            yield _batch(positions, [load_one(job, paths[p]) for p in positions])
        return
    decoder = _ParallelDecoder(job, paths, workers, LOOKAHEAD_BATCHES * batch_size)
    try:
        for start in starts:
            positions = range(start, min(start + batch_size, len(paths)))
            yield _batch(positions, decoder.results(positions))
    finally:
        decoder.close()


def default_workers() -> int:
    """One decoding process per core this process may use."""
    from models.runtime import usable_cores

    return usable_cores()
