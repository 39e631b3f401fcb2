"""Query arithmetic on POST /v1/search/text: weighted text terms and indexed photos added and
subtracted, through the real app and model on SQLite and PostgreSQL. The expected scores come from
plain searches: for unit vectors, cos(Σ w·v, p) / |Σ w·v| is the weighted sum of each part's score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from models.encoder import Encoder
from tests.builders.access import bearer, two_collections

ALL = 12  # photos in the library: every search below scores all of them


def scores(client: TestClient, path: str = "/v1/search/text", **body: object) -> dict[int, float]:
    response = client.post(path, json={"k": ALL, **body})
    assert response.status_code == 200, response.text
    return {hit["photo"]["id"]: hit["score"] for hit in response.json()["hits"]}


def assert_scores(got: dict[int, float], expected: dict[int, float]) -> None:
    assert sorted(got) == sorted(expected)
    for pid, score in expected.items():
        assert got[pid] == pytest.approx(score, abs=1e-4), pid


def test_weighted_terms_score_as_the_normalised_sum_of_their_vectors(
    metadata_library, encoder: Encoder
) -> None:
    client, _ = metadata_library
    texts = ["a dog", "a sunny beach", "snow"]
    parts = [scores(client, query=text) for text in texts]
    weights = np.array([2.0, 1.0, -0.5])
    norm = float(np.linalg.norm(weights @ encoder.encode_texts(texts)))
    got = scores(client, query="2:a dog + a sunny beach - 0.5:snow")
    assert_scores(
        got, {pid: sum(w * p[pid] for w, p in zip(weights, parts, strict=True)) / norm for pid in parts[0]}
    )
    assert list(got) != list(parts[0])  # the other terms changed the order


def test_a_plain_query_is_embedded_whole_as_before(metadata_library) -> None:
    client, _ = metadata_library
    # A + A normalises to A's own vector, so equal scores show how the plain text was embedded
    for text in ("a dog running on the grass", "a t-shirt: 1+1 -2"):
        plain = scores(client, query=text)
        assert_scores(scores(client, query=f"{text} + {text}"), plain)
    assert_scores(scores(client, query="1:a dog"), scores(client, query="a dog"))  # the weight is not text


def test_photos_are_mixed_in_by_their_stored_vectors(metadata_library) -> None:
    client, shots = metadata_library
    photo = min(shots)
    alike = scores(client, "/v1/search/image", photo_id=photo)  # leaves the photo itself out
    got = scores(client, query="", positive_photo_ids=[photo])
    assert photo not in got  # an example photo is never a result
    assert_scores(got, alike)
    dog = scores(client, query="a dog")
    norm = float(np.sqrt(2 - 2 * dog[photo]))  # |d - p| for unit vectors d and p
    mixed = scores(client, query="a dog", negative_photo_ids=[photo])
    assert photo not in mixed
    assert_scores(mixed, {pid: (dog[pid] - alike[pid]) / norm for pid in dog if pid != photo})


def test_unusable_arithmetic_is_a_422_that_says_why(metadata_library) -> None:
    client, shots = metadata_library
    photo = min(shots)
    cases = [
        ({"query": "+ -"}, "no terms"),
        ({"query": "x2:dog"}, "not a number"),
        ({"query": "a dog - a dog"}, "cancel out"),
        ({"query": ""}, "empty"),
        ({"query": "", "positive_photo_ids": [photo] * 1000}, "at most 100"),
        ({"query": "dog", "negative_photo_ids": [0]}, "greater than or equal to 1"),
    ]
    for body, reason in cases:
        response = client.post("/v1/search/text", json=body)
        assert response.status_code == 422, body
        assert reason in response.text, (body, response.text)
    unknown = client.post("/v1/search/text", json={"query": "dog", "positive_photo_ids": [987_654_321]})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no photo with id 987654321"


def test_a_photo_outside_the_keys_collections_is_an_unknown_id(
    settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    setup = two_collections(settings, encoder, tmp_path)
    family, theirs = bearer(setup.tokens["family"]), setup.work_ids[0]
    with TestClient(create_app(setup.settings, encoder=encoder)) as client:
        for field in ("positive_photo_ids", "negative_photo_ids"):
            response = client.post("/v1/search/text", json={"query": "dog", field: [theirs]}, headers=family)
            assert response.status_code == 404 and response.json()["detail"] == f"no photo with id {theirs}"
        mine = client.post(
            "/v1/search/text", json={"query": "", "positive_photo_ids": [setup.family_ids[0]]}, headers=family
        )
        assert mine.status_code == 200 and mine.json()["hits"]
        assert setup.family_ids[0] not in {hit["photo"]["id"] for hit in mine.json()["hits"]}
