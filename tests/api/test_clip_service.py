"""A clip model behind the real service: index a folder with zero-shot tags, then search and classify
over HTTP through FastAPI's TestClient (lifespan included), on SQLite."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.core.config import IndexerSettings, Settings
from app.main import create_app
from app.services.filters import SearchFilters
from app.services.search import SearchService
from app.storage import repository as repo
from app.storage.db import make_engine, migrate, session_factory
from indexer.labels import LabelOptions, apply_labels
from indexer.pipeline import index_folder
from models.clip.encoder import ClipEncoder, random_clip_encoder
from models.clip.tiny import tiny_clip_config
from models.images import decode_photo
from models.loading import needed_side
from models.zero_shot import zero_shot

LABELS = ("dog", "beach", "people", "snow", "bicycle")


@pytest.fixture(scope="module")
def clip() -> ClipEncoder:
    return random_clip_encoder(tiny_clip_config(), torch.device("cpu"), seed=1)


@pytest.fixture
def indexed(sqlite_settings: Settings, photo_folder: Path, clip: ClipEncoder) -> Settings:
    engine = make_engine(sqlite_settings.db_url)
    migrate(engine)
    report = index_folder(
        root=photo_folder,
        collection="default",
        encoder=clip,
        sessions=session_factory(engine),
        index_dir=sqlite_settings.index_dir,
        labels=LabelOptions(LABELS, top_k=2, min_probability=0.0),
        settings=IndexerSettings(workers=0),
        show_progress=False,
    )
    engine.dispose()
    assert report.embedded == 12
    return sqlite_settings


def _sessions(settings: Settings):  # type: ignore[no-untyped-def]
    return session_factory(make_engine(settings.db_url))


def _jpeg(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_text_search_scores_are_the_models_cosines(indexed: Settings, clip: ClipEncoder) -> None:
    with TestClient(create_app(indexed, encoder=clip)) as client:
        # dedup off: random tiny-model vectors lie close together, and the grouping threshold is the
        # default model's (api.dedup_threshold); every photo is listed with its own cosine
        query = {"query": "a dog runs on the beach", "k": 5, "dedup": False}
        response = client.post("/v1/search/text", json=query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == clip.key
    hits = body["hits"]
    assert len(hits) == 5
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    top = hits[0]["photo"]
    # decoded as the indexer decodes it: a JPEG at reduced scale, never below the model's input size
    as_indexed = decode_photo(Path(top["path"]), min_side=needed_side(clip.preprocess)).image
    expected = clip.encode_images([as_indexed])[0] @ clip.encode_texts(["a dog runs on the beach"])[0]
    assert scores[0] == pytest.approx(float(expected), abs=1e-4)


def test_classify_an_upload(indexed: Settings, photo_folder: Path, clip: ClipEncoder) -> None:
    photo = sorted(photo_folder.glob("*.jpg"))[0]
    data = _jpeg(photo)
    with TestClient(create_app(indexed, encoder=clip)) as client:
        response = client.post(
            "/v1/classify",
            files={"file": ("p.jpg", data, "image/jpeg")},
            data={"labels": ["dog", "cat", "beach"]},
        )
    assert response.status_code == 200, response.text
    labels = response.json()["labels"]
    assert sorted(x["label"] for x in labels) == ["beach", "cat", "dog"]
    probabilities = [x["probability"] for x in labels]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    # an upload is decoded as the server decodes it: a JPEG at reduced scale, twice the model's input
    decoded = decode_photo(data, min_side=2 * clip.preprocess.image_size).image
    assert max(decoded.size) < max(Image.open(io.BytesIO(data)).size)
    image = clip.encode_images([decoded])
    prompts = clip.encode_texts([f"a photo of {x['label']}." for x in labels])
    expected, _ = zero_shot(image, prompts, clip.logit_scale)
    assert np.allclose(probabilities, expected[0], atol=1e-4)


def test_classify_an_indexed_photo_and_bad_requests(indexed: Settings, clip: ClipEncoder) -> None:
    with TestClient(create_app(indexed, encoder=clip)) as client:
        photo_id = client.post("/v1/search/text", json={"query": "x", "k": 1}).json()["hits"][0]["photo"][
            "id"
        ]
        good = client.post("/v1/classify", json={"photo_id": photo_id, "labels": ["dog", "cat"]})
        no_labels = client.post("/v1/classify", json={"photo_id": photo_id, "labels": []})
        blank = client.post("/v1/classify", json={"photo_id": photo_id, "labels": ["dog", "  "]})
        bad_prompt = client.post(
            "/v1/classify", json={"photo_id": photo_id, "labels": ["dog"], "prompt": "a"}
        )
        unknown = client.post("/v1/classify", json={"photo_id": 99999, "labels": ["dog", "cat"]})
        no_file = client.post("/v1/classify", data={"labels": ["dog"]}, files={"other": ("x", b"x")})
        not_image = client.post(
            "/v1/classify", files={"file": ("x.jpg", b"not an image", "image/jpeg")}, data={"labels": ["a"]}
        )
    assert good.status_code == 200 and len(good.json()["labels"]) == 2
    assert no_labels.status_code == 422
    assert blank.status_code == 422 and "empty" in blank.json()["detail"]
    assert bad_prompt.status_code == 422 and "{}" in bad_prompt.json()["detail"]
    assert unknown.status_code == 404 and "99999" in unknown.json()["detail"]
    assert no_file.status_code == 422 and "'file'" in no_file.json()["detail"]
    assert not_image.status_code == 422 and "not a usable image" in not_image.json()["detail"]


def test_tags_filter_text_and_image_search(indexed: Settings, clip: ClipEncoder) -> None:
    sessions = _sessions(indexed)
    with sessions() as session:
        counts = dict(repo.tag_counts(session))
    assert sum(counts.values()) == 12 * 2  # top 2 of the label set for each photo
    tag, tagged = min(counts.items(), key=lambda item: item[1])  # a filter that leaves some out
    assert tagged < 12
    with TestClient(create_app(indexed, encoder=clip)) as client:
        text = client.post("/v1/search/text", json={"query": "outdoors", "k": 12, "tags": [tag.upper()]})
        none = client.post("/v1/search/text", json={"query": "outdoors", "k": 12, "tags": ["zebra"]})
        first = text.json()["hits"][0]["photo"]["id"]
        image = client.post("/v1/search/image", json={"photo_id": first, "k": 12, "tags": [tag]})
        original = client.get(f"/v1/photos/{first}/file").content
        uploaded = client.post(
            "/v1/search/image",
            files={"file": ("q.jpg", original, "image/jpeg")},
            data={"k": "12", "tags": [tag]},
        )
    assert text.status_code == 200, text.text
    ids = [h["photo"]["id"] for h in text.json()["hits"]]
    with sessions() as session:
        tags = repo.tags_of_photos(session, photo_ids=ids)
    assert len(ids) == tagged
    assert all(tag in [t for t, _ in tags[i]] for i in ids)
    assert all(tag in h["photo"]["tags"] for h in text.json()["hits"])  # tags are shown on each photo
    assert uploaded.status_code == 200, uploaded.text
    assert {h["photo"]["id"] for h in uploaded.json()["hits"]} == set(ids)  # multipart tags filter too
    assert none.json()["hits"] == []
    assert image.status_code == 200, image.text
    assert {h["photo"]["id"] for h in image.json()["hits"]} == set(ids) - {first}


def test_tagging_is_incremental_and_a_new_label_set_replaces_the_old(
    indexed: Settings, clip: ClipEncoder
) -> None:
    sessions = _sessions(indexed)
    with sessions() as session:
        collection = repo.get_collection(session, name="default")
    assert collection is not None
    again = apply_labels(
        sessions,
        collection_id=collection.id,
        encoder=clip,
        options=LabelOptions(LABELS, top_k=2, min_probability=0.0),
    )
    assert again.photos_tagged == 0
    other = apply_labels(
        sessions,
        collection_id=1,
        encoder=clip,
        options=LabelOptions(("cat", "car"), top_k=1, min_probability=0.0),
    )
    assert other.photos_tagged == 12
    with sessions() as session:
        assert {t for t, _ in repo.tag_counts(session)} <= {"cat", "car"}


def test_service_filter_without_http(indexed: Settings, clip: ClipEncoder) -> None:
    service = SearchService(indexed, clip, _sessions(indexed))
    every = service.search_text("a photo", k=12)
    with service.sessions() as session:
        tag = repo.tag_counts(session)[-1][0]  # the rarest tag present
        dogs = repo.photo_ids_with_tags(session, tags=[tag])
    only = service.search_text("a photo", k=12, filters=SearchFilters.of(tags=[tag]))
    assert 0 < len(dogs) < 12
    assert {h.photo.id for h in only} == set(dogs)
    order = [h.photo.id for h in every if h.photo.id in dogs]
    assert [h.photo.id for h in only] == order  # same ranking, only filtered
