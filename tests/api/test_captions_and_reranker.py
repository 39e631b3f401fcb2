"""Joint model zoo in the service: caption→caption search over HTTP, and the re-ranker on /search/text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.services.filters import Page
from app.services.search import SearchService
from app.storage.db import make_engine, session_factory
from models.encoder import Encoder
from models.images import decode_photo
from models.registry import create_encoder
from tests.builders import photos
from tests.builders.indexing import run_index


@pytest.fixture(scope="module")
def captions_client(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Iterator[TestClient]:
    base = tmp_path_factory.mktemp("captions-api")
    folder = base / "photos"
    photos.copy_shared_photos(folder, "val", 12)
    settings = Settings(data_dir=base / "data", device="cpu")
    run_index(settings, encoder, folder, captions=folder / "captions.jsonl")
    with TestClient(create_app(settings, encoder=encoder)) as client:
        yield client


def test_caption_search_finds_the_photo_of_a_caption(captions_client: TestClient) -> None:
    rows = photos.shared_rows("val", 12)
    found = 0
    for row in rows:
        query = " ".join(row["captions"][1].split()[:-1])  # drop the trailing " ."
        response = captions_client.post("/v1/search/captions", json={"query": query, "k": 3})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["k"] == 3 and len(body["captions"]) == 3 and body["model"].startswith("joint-default@")
        scores = [c["score"] for c in body["captions"]]
        assert scores == sorted(scores, reverse=True)
        top = body["captions"][0]
        found += top["text"].rstrip(" .") == query.rstrip(" .")
        owner = captions_client.get(f"/v1/photos/{top['photo_id']}").json()
        assert top["text"] in owner["captions"]
    assert found >= 11  # a known caption finds itself first


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": "   ", "k": 3}, "query is empty"),
        ({"query": "a dog", "k": 0}, "greater than or equal to 1"),
        ({"query": "a dog", "k": 5000}, "k must be between 1 and 1000; got 5000"),
        ({"k": 3}, "Field required"),
        ({"query": "a dog", "limit": 3}, "Extra inputs are not permitted"),
    ],
)
def test_caption_search_rejects_bad_input(captions_client: TestClient, body: dict, message: str) -> None:
    response = captions_client.post("/v1/search/captions", json=body)
    assert response.status_code == 422
    assert message in str(response.json()["detail"])


@pytest.fixture(scope="module")
def rerank_service(tmp_path_factory: pytest.TempPathFactory, rerank_checkpoint: Path) -> SearchService:
    base = tmp_path_factory.mktemp("rerank-service")
    folder = base / "photos"
    photos.copy_shared_photos(folder, "val", 12)
    settings = Settings(data_dir=base / "data", device="cpu")
    encoder = create_encoder(str(rerank_checkpoint), device="cpu")
    run_index(settings, encoder, folder, captions=folder / "captions.jsonl")
    return SearchService(settings, encoder, session_factory(make_engine(settings.db_url)))


@pytest.mark.slow
def test_service_reranks_text_search_when_the_model_has_a_reranker(rerank_service: SearchService) -> None:
    encoder = rerank_service.encoder
    differs = 0
    for row in photos.shared_rows("val", 6):
        query = row["captions"][0]
        vector = rerank_service.vectors.text_vector(query)
        dual = rerank_service.photos_near(vector, Page(encoder.reranker.top_n), normalise=True)
        logits = encoder.reranker.rerank(
            " ".join(query.split()),
            [decode_photo(Path(h.photo.path)).image for h in dual],
            [h.order for h in dual],
        )
        expected = [dual[i].photo.id for i in np.argsort(-logits, kind="stable")]
        # dedup off: this tiny model's photo vectors are too alike for the default dedup threshold
        served = rerank_service.search_text(query, k=4, dedup=False)
        assert [h.photo.id for h in served] == expected[:4]
        page = rerank_service.search_text(query, k=2, offset=2, dedup=False)
        assert [h.photo.id for h in page] == expected[2:4]
        differs += expected[:4] != [h.photo.id for h in dual[:4]]
    assert differs >= 1  # the re-ranker really changes what the user sees


@pytest.mark.slow
def test_reranked_hits_over_http_carry_the_rerank_score_they_are_ordered_by(
    rerank_service: SearchService, captions_client: TestClient
) -> None:
    app = create_app(rerank_service.settings, encoder=rerank_service.encoder)
    query = photos.shared_rows("val", 1)[0]["captions"][0]
    with TestClient(app) as client:
        response = client.post("/v1/search/text", json={"query": query, "k": 5, "dedup": False})
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert len(hits) == 5
    reranked = [h["rerank_score"] for h in hits]
    assert all(0.0 <= s <= 1.0 for s in reranked)
    assert reranked == sorted(reranked, reverse=True)
    assert {h["photo"]["id"] for h in hits} <= {
        h.photo.id for h in rerank_service.photos_near(rerank_service.vectors.text_vector(query), Page(6))
    }
    # a model without a re-ranker: no rerank_score; the shipped one ranks by its query bank instead
    plain = captions_client.post("/v1/search/text", json={"query": query, "k": 5}).json()["hits"]
    assert all(h["rerank_score"] is None for h in plain)
    ranks = [h["rank_score"] for h in plain]
    assert ranks == sorted(ranks, reverse=True)


@pytest.mark.slow
def test_a_residual_reranker_corrects_the_order_the_user_would_see(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A residual re-ranker adds its logit to the score each hit was ranked by (cosine less the query
    bank's offset, through the temperature): untrained and gated it adds nothing, so the served order is
    the shipped model's own, photo for photo, and each hit's logit is its ranking score scaled."""
    import torch

    from models.joint.config import RerankerConfig
    from models.joint.encoder import JointReranker

    base = tmp_path_factory.mktemp("residual-rerank")
    folder = base / "photos"
    photos.copy_shared_photos(folder, "val", 12)
    settings = Settings(data_dir=base / "data", device="cpu")
    encoder = create_encoder("joint-default", device="cpu")
    model = encoder.model  # type: ignore[attr-defined]
    assert encoder.query_bank is not None  # its hits are ranked by cosine − offset
    model.add_reranker(RerankerConfig(residual=True, gate=True, top_n=8))
    encoder.reranker = JointReranker(model, model.config.preprocess, torch.device("cpu"))
    run_index(settings, encoder, folder, captions=folder / "captions.jsonl")
    service = SearchService(settings, encoder, session_factory(make_engine(settings.db_url)))
    scale = float(model.logit_scale.detach().exp().clamp(max=100.0))
    for row in photos.shared_rows("val", 4):
        query = row["captions"][0]
        dual = service.photos_near(service.vectors.text_vector(query), Page(8), normalise=True, dedup=False)
        assert all(h.rank_score is not None and h.rank_score != h.score for h in dual)
        served = service.search_text(query, k=8, dedup=False)
        assert [h.photo.id for h in served] == [h.photo.id for h in dual]
        images = [decode_photo(Path(h.photo.path)).image for h in dual]
        logits = encoder.reranker.rerank(" ".join(query.split()), images, [h.order for h in dual])
        np.testing.assert_allclose(logits, scale * np.array([h.order for h in dual]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="one score per candidate photo"):
        encoder.reranker.rerank("a dog", images, [0.1])
