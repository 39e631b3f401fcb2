"""Requests that used to crash the server (500) get a 4xx that says why, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.filters import MAX_PHOTO_ID
from models.encoder import Encoder
from tests.builders.apps import database_url, indexed_settings

JSON = {"content-type": "application/json"}
TOO_BIG_ID = 2**63  # one past the largest BIGINT


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, encoder: Encoder
) -> Iterator[TestClient]:
    base = tmp_path_factory.mktemp("bad-requests")
    postgres = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    settings = indexed_settings(base, encoder, database_url(request.param, base, postgres), count=4)
    with TestClient(create_app(settings, encoder=encoder), raise_server_exceptions=False) as test_client:
        yield test_client


def post_raw(client: TestClient, path: str, body: bytes):  # noqa: ANN201
    return client.post(path, content=body, headers=JSON)


@pytest.mark.parametrize("big", [MAX_PHOTO_ID + 1, TOO_BIG_ID, 2**64 + 5, 10**30])
def test_photo_ids_past_bigint_are_a_422(client: TestClient, big: int) -> None:
    answers = [
        client.get(f"/v1/photos/{big}"),
        client.get(f"/v1/photos/{big}/file"),
        client.get(f"/v1/photos/{big}/thumbnail"),
        client.post("/v1/search/image", json={"photo_id": big}),
        client.post("/v1/annotate", json={"photo_id": big}),
        client.post("/v1/classify", json={"photo_id": big, "labels": ["dog", "cat"]}),
    ]
    assert [a.status_code for a in answers] == [422] * 6
    assert all(f"less than or equal to {MAX_PHOTO_ID}" in a.text for a in answers)
    largest = MAX_PHOTO_ID  # still a valid id: bound by the database driver, simply not found
    assert client.get(f"/v1/photos/{largest}").json() == {"detail": f"no photo with id {largest}"}


@pytest.mark.parametrize("path", ["/v1/search/image", "/v1/annotate", "/v1/classify"])
@pytest.mark.parametrize(
    "body",
    [b"[" * 50_000 + b"]" * 50_000, b'{"photo_id": 1, "labels": ["\xff\xfe"]}', b'{"photo_id": 1,'],
    ids=["nested", "not-utf8", "truncated"],
)
def test_malformed_json_bodies_are_a_422(client: TestClient, path: str, body: bytes) -> None:
    answer = post_raw(client, path, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("body is not valid JSON")


def test_malformed_json_on_schema_routes_is_a_4xx(client: TestClient) -> None:
    for path in ("/v1/search/text", "/v1/search/captions"):
        for body in (b"[" * 50_000 + b"]" * 50_000, b'{"query": "\xff"}'):
            answer = post_raw(client, path, body)
            assert answer.status_code in (400, 422) and answer.json()["detail"], (path, answer.text)


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/v1/search/text", b'{"query": "dog", "min_score": NaN}', "finite number"),
        ("/v1/search/text", b'{"query": "dog", "min_score": Infinity}', "finite number"),
        ("/v1/search/image", b'{"photo_id": 1, "min_score": NaN}', "finite number"),
        ("/v1/search/text", b'{"query": "a \\ud800 dog"}', "lone surrogate"),
        ("/v1/search/captions", b'{"query": "\\udfff"}', "lone surrogate"),
        ("/v1/search/text", b'{"query": "dog\\u0000"}', "NUL character"),
        ("/v1/search/text", b'{"query": "dog", "collections": ["a\\u0000b"]}', "NUL character"),
        ("/v1/search/text", b'{"query": "dog", "tags": ["\\u0000"]}', "NUL character"),
        ("/v1/search/text", b'{"query": "dog", "tags": ["\\ud800"]}', "lone surrogate"),
        ("/v1/search/image", b'{"photo_id": 1, "collections": ["\\u0000"]}', "NUL character"),
        ("/v1/classify", b'{"photo_id": 1, "labels": ["dog", "\\ud800"]}', "lone surrogate"),
        ("/v1/classify", b'{"photo_id": 1, "labels": ["dog"], "prompt": "a {}\\u0000"}', "NUL character"),
        ("/v1/search/text", b'{"query": "dog", "offset": 1000000000000}', "offset must be between 0 and"),
    ],
)
def test_values_that_cannot_be_searched_are_a_422(
    client: TestClient, path: str, body: bytes, fragment: str
) -> None:
    answer = post_raw(client, path, body)
    assert answer.status_code == 422, answer.text
    assert fragment in answer.text


def test_multipart_fields_are_checked_like_json(client: TestClient) -> None:
    photo = client.get("/v1/photos/1/file").content
    for fields, fragment in (
        ({"min_score": "nan"}, "finite number"),
        ({"collections": "a\x00b"}, "NUL character"),
        ({"k": str(TOO_BIG_ID)}, "k must be between 1 and"),
        ({"k": ["2", "3"]}, "form field 'k' is given 2 times; give it once"),
    ):
        answer = client.post("/v1/search/image", files={"file": ("q.jpg", photo, "image/jpeg")}, data=fields)
        assert answer.status_code == 422 and fragment in answer.text, answer.text
