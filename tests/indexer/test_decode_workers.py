"""Indexing with decoding worker processes: a crashing decoder and a file that vanishes mid-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from app.storage.tables import Photo, PhotoEmbedding
from indexer import embedding
from models.encoder import Encoder
from models.loading import CRASH_ON_ENV
from tests.builders.indexing import run_index, served_ids, table
from tests.builders.photos import copy_shared_photos


def index_with_workers(settings: Settings, encoder: Encoder, root: Path) -> None:
    run_index(settings, encoder, root, batch_size=4, workers=2)


def rows(settings: Settings) -> dict[str, Photo]:
    return {Path(p.path).name: p for p in table(settings, Photo)}


def test_a_crashing_decoder_skips_its_photo_and_indexes_the_rest(
    settings: Settings, encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "photos"
    copy_shared_photos(root, "val", 7)
    (root / "crashme.jpg").write_bytes(next(root.glob("*.jpg")).read_bytes()[:-1] + b"\xd9")
    monkeypatch.setenv(CRASH_ON_ENV, "crashme")
    index_with_workers(settings, encoder, root)
    photos = rows(settings)
    assert photos["crashme.jpg"].status == "skipped"
    assert "decoder crashed" in (photos["crashme.jpg"].error or "")
    good = {name for name, photo in photos.items() if photo.status == "ok"}
    assert len(good) == 7
    assert len(table(settings, PhotoEmbedding)) == 7
    assert served_ids(settings, encoder) == {photos[name].id for name in good}
    index_with_workers(settings, encoder, root)  # a second run: nothing duplicated, nothing re-embedded
    assert len(table(settings, PhotoEmbedding)) == 7


def test_a_photo_gone_between_scan_and_decode_is_skipped_with_its_reason(
    settings: Settings, encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "photos"
    copy_shared_photos(root, "val", 5)
    victim = sorted(root.glob("*.jpg"))[2]
    listed = embedding.pending_photos

    def list_then_lose_one(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        pending = listed(*args, **kwargs)
        victim.unlink()  # after the scan hashed it, before a worker decodes it
        return pending

    monkeypatch.setattr(embedding, "pending_photos", list_then_lose_one)
    index_with_workers(settings, encoder, root)
    photo = rows(settings)[victim.name]
    assert (photo.status, photo.error) == ("skipped", f"file not found: {victim}")
    assert sum(p.status == "ok" for p in rows(settings).values()) == 4
    monkeypatch.setattr(embedding, "pending_photos", listed)
    index_with_workers(settings, encoder, root)  # the next run sees it gone and forgets it
    assert victim.name not in rows(settings)
    assert len(served_ids(settings, encoder)) == 4
