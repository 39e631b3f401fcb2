"""A shipped model annotates photos nobody captioned from its caption bank (real model, real bank of
45,432 training captions, real Flickr8k val photos, which it never saw in training). The model is
joint-default-v6, whose bank embeds in minutes here; the default ships the same caption file
(tests/models/test_caption_bank.py)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.indexing import photo_ids_by_path, run_index

COUNT = 25
DOGS = (2, 14, 17, 19, 24)  # val photos whose five captions all mention a dog
COMMON = {"with", "that", "this", "their", "there", "they", "from", "into", "while", "some", "near"}
COMMON |= {"front", "other", "each", "very", "wearing", "shirt", "playing", "looking", "standing", "sitting"}


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4 and w not in COMMON}


def test_an_uncaptioned_library_is_described_by_the_models_captions(
    tmp_path: Path, minilm_encoder: Encoder
) -> None:
    encoder = minilm_encoder
    folder = tmp_path / "photos"
    photos.copy_shared_photos(folder, "val", COUNT)  # its captions.jsonl is not indexed: photos only
    settings = Settings(data_dir=tmp_path / "data", device="cpu")
    run_index(settings, encoder, folder)
    ids = {Path(path).name: i for path, i in photo_ids_by_path(settings).items()}
    rows = photos.shared_rows("val", COUNT)
    described = 0
    with TestClient(create_app(settings, encoder=encoder)) as client:
        for position, row in enumerate(rows):
            answer = client.post("/v1/annotate", json={"photo_id": ids[Path(row["image"]).name], "k": 3})
            assert answer.status_code == 200, answer.text
            captions = answer.json()["captions"]
            assert len(captions) == 3 and {c["source"] for c in captions} == {"model"}
            assert all(c["caption_id"] is None and c["photo_id"] is None for c in captions)
            ranks = [c["rank_score"] for c in captions]  # the bank's captions get hubness offsets too
            assert ranks == sorted(ranks, reverse=True)
            assert all(r < c["score"] for r, c in zip(ranks, captions, strict=True))
            said = " ".join(c["text"] for c in captions)
            if position in DOGS:
                assert re.search(r"\b(dog|dogs|puppy)\b", said.lower()), said
            truth = set().union(*(content_words(c) for c in row["captions"]))
            described += bool(truth & content_words(said))
    # most photos share a content word ("child", "water", "beach", ...) with what people wrote for them
    assert described >= 18, described
