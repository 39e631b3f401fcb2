"""The real app through its test client, over real indexed photos, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.core.config import ApiSettings, Settings
from app.main import create_app
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.databases import reset_postgres
from tests.builders.indexing import run_index


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def indexed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, encoder: Encoder
) -> Iterator[tuple[TestClient, Path]]:
    base = tmp_path_factory.mktemp("api")
    folder = base / "photos"
    photos.copy_shared_photos(folder, "val", 24)
    if request.param == "sqlite":
        url = f"sqlite:///{base / 'photosearch.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        reset_postgres(url)
    settings = Settings(
        data_dir=base / "data", database_url=url, device="cpu", api=ApiSettings(max_upload_bytes=2_000_000)
    )
    run_index(settings, encoder, folder, captions=folder / "captions.jsonl")
    with TestClient(create_app(settings, encoder=encoder)) as client:
        yield client, folder


def upload(data: bytes, name: str = "query.jpg", **fields: str) -> dict:
    return {"files": {"file": (name, data, "image/jpeg")}, "data": fields}


def test_text_search_ranks_photos_with_scores(indexed) -> None:
    client, folder = indexed
    response = client.post("/v1/search/text", json={"query": "a dog running on the grass", "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    hits = body["hits"]
    assert len(hits) == 5 and body["model"].startswith("joint-default@")
    assert all(-1 <= h["score"] <= 1 and h["rerank_score"] is None for h in hits)
    # the shipped model has a query bank: hits are ordered by cosine minus the photo's hubness offset
    ranks = [h["rank_score"] for h in hits]
    assert ranks == sorted(ranks, reverse=True)
    assert all(r < h["score"] for r, h in zip(ranks, hits, strict=True))
    top = hits[0]["photo"]
    assert Path(top["path"]).parent == folder and top["width"] == 224 and len(top["captions"]) == 5
    assert any("dog" in caption for h in hits[:3] for caption in h["photo"]["captions"])


def test_text_search_finds_the_photo_its_caption_describes(indexed) -> None:
    client, folder = indexed
    rows = photos.shared_rows("val", 24)
    found = 0
    for row in rows:
        response = client.post("/v1/search/text", json={"query": row["captions"][0], "k": 5})
        found += Path(row["image"]).name in [Path(h["photo"]["path"]).name for h in response.json()["hits"]]
    assert found >= 16  # caption→photo in the top 5 of 24 for most photos


def test_pagination_and_min_score(indexed) -> None:
    client, _ = indexed
    full = client.post("/v1/search/text", json={"query": "children playing", "k": 10}).json()["hits"]
    page = client.post("/v1/search/text", json={"query": "children playing", "k": 5, "offset": 5}).json()[
        "hits"
    ]
    assert [h["photo"]["id"] for h in page] == [h["photo"]["id"] for h in full[5:10]]
    every = client.post("/v1/search/text", json={"query": "children playing", "k": 24}).json()["hits"]
    cut = sorted(h["score"] for h in every)[-4]  # min_score is on the cosine: 4 of the 24 photos pass
    kept = client.post(
        "/v1/search/text", json={"query": "children playing", "k": 10, "min_score": cut}
    ).json()
    assert all(h["score"] >= cut for h in kept["hits"]) and len(kept["hits"]) == 4
    assert [h["photo"]["id"] for h in kept["hits"]] == [h["photo"]["id"] for h in every if h["score"] >= cut]


def test_image_search_by_upload_and_by_photo_id(indexed) -> None:
    client, folder = indexed
    first = sorted(folder.glob("*.jpg"))[0]
    by_upload = client.post("/v1/search/image", **upload(first.read_bytes(), k="3"))
    assert by_upload.status_code == 200, by_upload.text
    top = by_upload.json()["hits"][0]
    assert Path(top["photo"]["path"]).name == first.name and top["score"] > 0.99
    by_id = client.post("/v1/search/image", json={"photo_id": top["photo"]["id"], "k": 3})
    assert by_id.status_code == 200
    ids = [h["photo"]["id"] for h in by_id.json()["hits"]]
    assert len(ids) == 3 and top["photo"]["id"] not in ids  # the query photo itself is left out


def test_text_hits_are_ranked_by_cosine_minus_the_query_bank_offset(indexed, encoder: Encoder) -> None:
    """rank_score = cosine − offset, the offset from the model's bank of typical captions; photo→photo
    search is plain cosine."""
    client, folder = indexed
    hits = client.post("/v1/search/text", json={"query": "a dog in the snow", "k": 24}).json()["hits"]
    assert len(hits) == 24
    bank = encoder.query_bank
    assert bank is not None
    images = [Image.open(h["photo"]["path"]).convert("RGB") for h in hits]
    offsets = bank.photo_offsets(encoder.encode_images(images))
    for hit, offset in zip(hits, offsets, strict=True):
        assert hit["rank_score"] == pytest.approx(hit["score"] - float(offset), abs=1e-4)
    assert 0.1 < float(offsets.mean()) < 0.5 and float(offsets.std()) > 0.005  # offsets differ by photo
    similar = client.post("/v1/search/image", json={"photo_id": hits[0]["photo"]["id"], "k": 5}).json()
    assert all(h["rank_score"] is None for h in similar["hits"])
    scores = [h["score"] for h in similar["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_annotate_returns_the_photos_own_captions_first(indexed) -> None:
    client, folder = indexed
    row = photos.shared_rows("val", 1)[0]
    own = {" ".join(c.split()).removesuffix(" .") for c in row["captions"]}
    photo = folder / Path(row["image"]).name
    response = client.post("/v1/annotate", **upload(photo.read_bytes(), k="5", sources="collection"))
    assert response.status_code == 200, response.text
    captions = response.json()["captions"]
    ranks = [c["rank_score"] for c in captions]  # ordered by cosine minus the caption's hubness offset
    assert len(captions) == 5 and ranks == sorted(ranks, reverse=True)
    assert all(c["rank_score"] < c["score"] and c["source"] == "collection" for c in captions)
    assert any(c["text"] in own for c in captions)
    photo_id = next(c["photo_id"] for c in captions if c["text"] in own)
    # by id, the photo's own captions first, then others the library holds (the model's caption bank as a
    # source: tests/api/test_annotate_sources.py and test_annotate_real_bank.py)
    by_id = client.post("/v1/annotate", json={"photo_id": photo_id, "k": 7, "sources": ["collection"]})
    assert by_id.status_code == 200
    both = by_id.json()["captions"]
    assert {c["text"] for c in both[:5]} == own and {c["text"] for c in both[5:]}.isdisjoint(own)


def test_photo_metadata_file_and_thumbnail(indexed) -> None:
    client, folder = indexed
    hit = client.post("/v1/search/text", json={"query": "a person", "k": 1}).json()["hits"][0]["photo"]
    meta = client.get(f"/v1/photos/{hit['id']}").json()
    assert meta["sha256"] == hit["sha256"] and meta["status"] == "ok"
    original = client.get(meta["file_url"])
    assert original.status_code == 200 and original.content == Path(meta["path"]).read_bytes()
    thumb = client.get(meta["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256


def test_health_ready_metrics_openapi(indexed) -> None:
    client, _ = indexed
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["indexed_vectors"] == 24 and ready["caption_vectors"] == 120
    assert "photosearch_requests_total" in client.get("/metrics").text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/search/text", "/v1/search/image", "/v1/annotate", "/v1/photos/{photo_id}"} <= set(paths)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"query": "", "k": 5}, "query is empty"),
        ({"query": "   \t ", "k": 5}, "query is empty"),
        ({"query": "dog " * 2500, "k": 5}, "the limit is 1,000"),
        ({"query": "dog", "k": 0}, "greater than or equal to 1"),
        ({"query": "dog", "k": -3}, "greater than or equal to 1"),
        ({"query": "dog", "k": 1001}, "k must be between 1 and 1000; got 1001"),
        ({"query": "dog", "k": "ten"}, "valid integer"),
        ({"k": 5}, "Field required"),
        ({"query": "dog", "colour": "red"}, "Extra inputs are not permitted"),
    ],
    ids=[
        "empty",
        "blank",
        "10k-chars",
        "k0",
        "k-negative",
        "k-too-big",
        "k-not-int",
        "no-query",
        "extra-field",
    ],
)
def test_bad_text_queries_get_a_4xx_that_says_why(indexed, body: dict, fragment: str) -> None:
    client, _ = indexed
    response = client.post("/v1/search/text", json=body)
    assert response.status_code == 422
    assert fragment in response.text
    assert client.post("/v1/search/text", json={"query": "dog", "k": 1}).status_code == 200


def test_malformed_json_is_a_4xx(indexed) -> None:
    client, _ = indexed
    for path in ("/v1/search/text", "/v1/search/image", "/v1/annotate"):
        response = client.post(
            path, content=b'{"query": "dog", ', headers={"content-type": "application/json"}
        )
        assert response.status_code in (400, 422), path
        assert "JSON" in response.text or "json" in response.text


def test_bad_uploads_get_a_4xx_that_says_why(indexed) -> None:
    client, _ = indexed
    for path in ("/v1/search/image", "/v1/annotate"):
        not_image = client.post(path, **upload(b"%PDF-1.4 definitely not a photo", "doc.jpg"))
        assert not_image.status_code == 422 and "not a usable image" in not_image.json()["detail"]
        empty = client.post(path, **upload(b"", "empty.jpg"))
        assert empty.status_code == 422 and "empty file" in empty.json()["detail"]
        bomb = client.post(path, **upload(photos.png_bomb(), "bomb.png"))
        assert bomb.status_code == 422 and "decompression bomb" in bomb.json()["detail"]
        huge = client.post(path, **upload(b"\xff" * 3_000_000, "huge.jpg"))
        assert huge.status_code == 413 and "limit" in huge.json()["detail"]
        no_file = client.post(path, data={"k": "3"}, files={"other": ("x", b"y")})
        assert no_file.status_code == 422 and "'file' part" in no_file.json()["detail"]
        bad_k = client.post(path, **upload(photos.jpeg_bytes(), k="0"))
        assert bad_k.status_code == 422 and "greater than or equal to 1" in bad_k.text
        wrong_type = client.post(path, content=b"raw", headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415 and "multipart/form-data" in wrong_type.json()["detail"]
    ok = client.post("/v1/search/image", **upload(photos.jpeg_bytes(), k="2"))
    assert ok.status_code == 200 and len(ok.json()["hits"]) == 2


def test_unknown_ids_are_404(indexed) -> None:
    client, _ = indexed
    for response in (
        client.get("/v1/photos/999999"),
        client.get("/v1/photos/999999/file"),
        client.get("/v1/photos/999999/thumbnail"),
        client.post("/v1/search/image", json={"photo_id": 999999}),
        client.post("/v1/annotate", json={"photo_id": 999999}),
    ):
        assert response.status_code == 404 and response.json()["detail"] == "no photo with id 999999"
    assert client.get("/v1/photos/not-a-number").status_code == 422
    assert client.post("/v1/search/text", json={"query": "dog", "collections": ["nope"]}).status_code == 404


def test_empty_service_says_nothing_is_indexed(sqlite_settings: Settings, encoder: Encoder) -> None:
    with TestClient(create_app(sqlite_settings, encoder=encoder)) as client:
        response = client.post("/v1/search/text", json={"query": "dog"})
        assert response.status_code == 503 and "photosearch index" in response.json()["detail"]
        assert client.get("/ready").status_code == 503
        assert client.get("/health").status_code == 200


def test_a_store_embedded_another_way_is_named_with_what_to_do(
    sqlite_settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    """Photos indexed with another preset or precision of the same weights after the server started
    (a GPU or Ray run, say): the 503 names them and says how to serve them, not just 'index'."""
    folder = tmp_path / "few"
    photos.copy_shared_photos(folder, "val", 3)
    served_key = encoder.apply_preset("best").key  # type: ignore[attr-defined]
    try:
        fast_key = encoder.apply_preset("fast").key  # type: ignore[attr-defined]
        run_index(sqlite_settings, encoder, folder)
    finally:
        encoder.apply_preset("best")  # type: ignore[attr-defined]
    with TestClient(create_app(sqlite_settings, encoder=encoder)) as client:
        response = client.post("/v1/search/text", json={"query": "dog"})
        detail = response.json()["detail"]
        assert response.status_code == 503
        assert f"nothing is indexed as {served_key}, but 3 photos are embedded as {fast_key}" in detail
        assert "restart the server" in detail and "PHOTOSEARCH_INFERENCE__PRESET" in detail
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["detail"] == detail
    encoder.apply_preset("best")  # type: ignore[attr-defined]  # the shipped setting
