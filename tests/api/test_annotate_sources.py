"""POST /v1/annotate over both caption sources: the key's collection captions and the model's caption
bank, through the real app on SQLite and PostgreSQL, with a tiny real model loaded from its checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.core.config import Settings
from app.main import create_app
from app.storage import repository as repo
from app.storage.db import make_engine, session_factory
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.apps import database_url
from tests.builders.caption_banks import BANK_TEXTS, tiny_encoder
from tests.builders.indexing import photo_ids_by_path, run_index

PHOTOS = 6


def library(
    kind: str, base: Path, postgres: str | None, encoder: Encoder, captioned: bool
) -> tuple[Settings, Path]:
    folder = base / "photos"
    photos.copy_shared_photos(folder, "val", PHOTOS)
    settings = Settings(data_dir=base / "data", database_url=database_url(kind, base, postgres), device="cpu")
    run_index(settings, encoder, folder, captions=folder / "captions.jsonl" if captioned else None)
    return settings, folder


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def uncaptioned(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Encoder, Settings]]:
    """Photos indexed without any captions file, served with a model that has a caption bank."""
    base = tmp_path_factory.mktemp("uncaptioned")
    encoder = tiny_encoder(base / "model")
    postgres = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    settings, _ = library(request.param, base, postgres, encoder, captioned=False)
    with TestClient(create_app(settings, encoder=encoder)) as client:
        yield client, encoder, settings


@pytest.fixture(scope="module")
def captioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Settings]]:
    base = tmp_path_factory.mktemp("captioned")
    encoder = tiny_encoder(base / "model")
    settings, _ = library("sqlite", base, None, encoder, captioned=True)
    with TestClient(create_app(settings, encoder=encoder)) as client:
        yield client, settings


def stored_vector(settings: Settings, encoder: Encoder, photo_id: int) -> np.ndarray:
    engine = make_engine(settings.db_url)
    with session_factory(engine)() as session:
        vector = repo.get_photo_vector(session, photo_id=photo_id, model_key=encoder.key, dim=encoder.dim)
    engine.dispose()
    assert vector is not None
    return vector


def expected_bank_order(encoder: Encoder, photo: np.ndarray) -> list[tuple[str, float]]:
    """The bank's captions by cosine to a photo vector, computed here from the model itself."""
    scores = encoder.encode_texts(BANK_TEXTS) @ photo
    return sorted(zip(BANK_TEXTS, scores.tolist(), strict=True), key=lambda pair: -pair[1])


def test_a_photo_nobody_captioned_gets_the_models_captions(uncaptioned) -> None:
    client, encoder, settings = uncaptioned
    for photo_id in sorted(photo_ids_by_path(settings).values())[:3]:
        response = client.post("/v1/annotate", json={"photo_id": photo_id, "k": 5})
        assert response.status_code == 200, response.text
        captions = response.json()["captions"]
        assert [c["source"] for c in captions] == ["model"] * 5
        assert all(c["caption_id"] is None and c["photo_id"] is None for c in captions)
        expected = expected_bank_order(encoder, stored_vector(settings, encoder, photo_id))[:5]
        assert [c["text"] for c in captions] == [text for text, _ in expected]
        assert [c["score"] for c in captions] == pytest.approx([s for _, s in expected], abs=1e-4)
        assert all(c["rank_score"] is None for c in captions)  # no query bank: ranked by cosine


def test_an_upload_is_annotated_from_the_bank_and_sources_are_form_fields(uncaptioned) -> None:
    client, encoder, settings = uncaptioned
    path = sorted(photo_ids_by_path(settings))[0]
    upload = {"file": ("photo.jpg", Path(path).read_bytes(), "image/jpeg")}
    response = client.post("/v1/annotate", files=upload, data={"k": "3", "sources": "model"})
    assert response.status_code == 200, response.text
    texts = [c["text"] for c in response.json()["captions"]]
    photo = encoder.encode_images([Image.open(path).convert("RGB")])[0]
    assert texts == [text for text, _ in expected_bank_order(encoder, photo)[:3]]
    bad = client.post("/v1/annotate", files=upload, data={"sources": "nope"})
    assert bad.status_code == 422 and "'collection' or 'model'" in bad.text


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"sources": ["nope"]}, 422, "'collection' or 'model'"),
        ({"sources": []}, 422, "at least 1 item"),
        ({"sources": ["collection"]}, 503, "no captions are indexed: attach some with `photosearch index"),
        ({"photo_id": 999_999}, 404, "no photo with id 999999"),
    ],
)
def test_bad_annotate_requests_say_why(uncaptioned, body: dict, status: int, fragment: str) -> None:
    client, _, settings = uncaptioned
    photo_id = min(photo_ids_by_path(settings).values())
    response = client.post("/v1/annotate", json={"photo_id": photo_id, **body})
    assert response.status_code == status
    assert fragment in response.text


def test_collection_and_model_captions_are_merged_with_the_photos_own_first(captioned) -> None:
    client, settings = captioned
    photo_id = min(photo_ids_by_path(settings).values())
    own = set(client.get(f"/v1/photos/{photo_id}").json()["captions"])
    captions = client.post("/v1/annotate", json={"photo_id": photo_id, "k": 12}).json()["captions"]
    assert len(captions) == 12 and {c["source"] for c in captions} == {"collection", "model"}
    head = captions[: len(own)]
    assert {c["text"] for c in head} == own and all(c["photo_id"] == photo_id for c in head)
    assert [c["score"] for c in head] == sorted((c["score"] for c in head), reverse=True)
    rest = captions[len(own) :]
    assert [c["score"] for c in rest] == sorted((c["score"] for c in rest), reverse=True)
    for c in captions:
        is_model = c["source"] == "model"
        assert (c["caption_id"] is None) == is_model and (c["photo_id"] is None) == is_model
        assert not is_model or c["text"] in BANK_TEXTS
    only_model = client.post("/v1/annotate", json={"photo_id": photo_id, "sources": ["model"]}).json()
    assert {c["source"] for c in only_model["captions"]} == {"model"} and len(only_model["captions"]) == 8
    only_ours = client.post("/v1/annotate", json={"photo_id": photo_id, "sources": ["collection"], "k": 20})
    assert {c["source"] for c in only_ours.json()["captions"]} == {"collection"}


def test_model_captions_get_hubness_offsets_when_the_model_has_a_query_bank(tmp_path: Path) -> None:
    encoder = tiny_encoder(tmp_path / "model", query_bank=True)
    settings, folder = library("sqlite", tmp_path, None, encoder, captioned=True)
    photo_path = sorted(folder.glob("*.jpg"))[0]
    upload = {"file": ("photo.jpg", photo_path.read_bytes(), "image/jpeg")}
    with TestClient(create_app(settings, encoder=encoder)) as client:
        captions = client.post("/v1/annotate", files=upload, data={"k": "40"}).json()["captions"]
    assert encoder.query_bank is not None and {c["source"] for c in captions} == {"collection", "model"}
    model = [c for c in captions if c["source"] == "model"]
    offsets = encoder.query_bank.caption_offsets(encoder.encode_texts([c["text"] for c in model]))
    for caption, offset in zip(model, offsets, strict=True):
        assert caption["rank_score"] == pytest.approx(caption["score"] - float(offset), abs=1e-4)
    ranks = [c["rank_score"] for c in captions]  # both sources in one order
    assert ranks == sorted(ranks, reverse=True)


def test_without_a_bank_or_captions_annotate_is_503_saying_what_to_do(tmp_path: Path) -> None:
    encoder = tiny_encoder(tmp_path / "model", texts=[])  # a checkpoint without a sidecar
    settings, _ = library("sqlite", tmp_path, None, encoder, captioned=False)
    photo_id = min(photo_ids_by_path(settings).values())
    with TestClient(create_app(settings, encoder=encoder)) as client:
        both = client.post("/v1/annotate", json={"photo_id": photo_id})
        model = client.post("/v1/annotate", json={"photo_id": photo_id, "sources": ["model"]})
    assert both.status_code == 503
    assert "has no caption bank, and no captions are indexed" in both.json()["detail"]
    assert model.status_code == 503 and "ask for collection captions" in model.json()["detail"]


def test_the_bank_is_embedded_on_first_use_then_loaded_at_start_up(tmp_path: Path) -> None:
    encoder = tiny_encoder(tmp_path / "model")
    settings, _ = library("sqlite", tmp_path, None, encoder, captioned=False)
    settings = settings.model_copy(update={"cache_dir": tmp_path / "cache"})
    photo_id = min(photo_ids_by_path(settings).values())
    first = create_app(settings, encoder=encoder)
    with TestClient(first) as client:
        assert not first.state.services.captions.model_captions.loaded  # nothing cached yet
        answer = client.post("/v1/annotate", json={"photo_id": photo_id}).json()
    assert len(list((tmp_path / "cache" / "caption-banks").glob("*.npz"))) == 1
    again = create_app(settings, encoder=encoder)
    with TestClient(again) as client:
        assert again.state.services.captions.model_captions.loaded
        assert client.post("/v1/annotate", json={"photo_id": photo_id}).json() == answer
    assert np.isfinite([c["score"] for c in answer["captions"]]).all()


def test_a_request_that_finds_the_bank_being_embedded_is_told_to_retry(tmp_path: Path) -> None:
    import threading

    from app.services.limits import HeavyWorkGate
    from app.services.model_captions import ModelCaptions
    from models.errors import TooBusyError

    encoder = tiny_encoder(tmp_path / "model")
    started, release = threading.Event(), threading.Event()
    embed = encoder.encode_texts

    def slow_embedding(texts: list[str], batch_size: int = 256) -> np.ndarray:
        started.set()
        release.wait(10)
        return embed(texts, batch_size)

    encoder.encode_texts = slow_embedding  # type: ignore[method-assign]
    captions = ModelCaptions(encoder, tmp_path / "cache", HeavyWorkGate(2, 1.0), wait_s=0.2)
    first = threading.Thread(target=captions.bank)
    first.start()
    assert started.wait(10)
    with pytest.raises(TooBusyError, match="caption bank is being prepared"):
        captions.bank()
    release.set()
    first.join(10)
    bank = captions.bank()
    assert captions.loaded and bank is not None and bank.texts == BANK_TEXTS
