"""GET /v1/photos: filters, date order, pages and API key scopes, through the real app on SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from models.encoder import Encoder
from tests.builders.access import bearer, two_collections
from tests.builders.metadata_photos import Shot

Params = list[tuple[str, str | int]]


def listed(client: TestClient, params: Params) -> tuple[int, list[int]]:
    response = client.get("/v1/photos", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["total"], [photo["id"] for photo in body["photos"]]


def by_date(shots: dict[int, Shot], newest: bool) -> list[int]:
    """The expected order: dated photos by date, undated ones after them, ties by id."""
    dated = [pid for pid, s in shots.items() if s.taken is not None]
    dated.sort(key=lambda pid: (shots[pid].taken, -pid if newest else pid), reverse=newest)
    return dated + sorted(pid for pid, s in shots.items() if s.taken is None)


def test_every_photo_is_listed_newest_first_by_default_and_undated_last(metadata_library) -> None:
    client, shots = metadata_library
    total, ids = listed(client, [("k", 50)])
    assert total == 12
    assert ids == by_date(shots, newest=True)
    assert listed(client, [("k", 50), ("sort", "oldest")])[1] == by_date(shots, newest=False)


def test_pages_follow_on_from_each_other_without_repeats_or_gaps(metadata_library) -> None:
    client, shots = metadata_library
    for sort in ("newest", "oldest"):
        pages = [listed(client, [("k", 5), ("offset", o), ("sort", sort)]) for o in (0, 5, 10)]
        assert [total for total, _ in pages] == [12, 12, 12]
        assert [len(ids) for _, ids in pages] == [5, 5, 2]
        assert [pid for _, ids in pages for pid in ids] == by_date(shots, newest=sort == "newest")


def test_filters_are_query_parameters_and_lists_are_repeated(metadata_library) -> None:
    client, shots = metadata_library
    cameras = {("Acme", "Shooter 3000"), ("Bolt", "Zoom X")}
    total, ids = listed(client, [("cameras", "acme"), ("cameras", "bolt zoom x"), ("k", 50)])
    assert total == 5 and set(ids) == {pid for pid, s in shots.items() if s.camera in cameras}
    total, ids = listed(
        client, [("folders", "trips/alps"), ("taken_after", "2021-01-10"), ("sort", "oldest")]
    )
    expected = sorted(
        (pid for pid, s in shots.items() if s.folder == "trips/alps" and s.taken and s.taken.day >= 10),
        key=lambda pid: shots[pid].taken,  # type: ignore[arg-type, return-value]
    )
    assert total == len(expected) == 3 and ids == expected
    assert listed(client, [("taken_before", "2021-01-06")]) == (2, by_date(shots, newest=True)[-6:-4])
    assert listed(client, [("cameras", "Nobody Makes This")]) == (0, [])


def test_bad_listings_are_refused_with_a_reason(metadata_library) -> None:
    client, _ = metadata_library
    relevance = client.get("/v1/photos", params={"sort": "relevance"})
    assert relevance.status_code == 422 and "newest" in relevance.text
    assert client.get("/v1/photos", params={"k": 100_000}).status_code == 422
    assert client.get("/v1/photos", params={"offset": -1}).status_code == 422
    assert client.get("/v1/photos", params={"min_score": 0.2}).status_code == 422  # needs a query
    dates = client.get("/v1/photos", params={"taken_after": "2021-02-01", "taken_before": "2021-01-01"})
    assert dates.status_code == 422
    missing = client.get("/v1/photos", params={"collections": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_a_key_lists_only_its_collections(settings: Settings, encoder: Encoder, tmp_path: Path) -> None:
    setup = two_collections(settings, encoder, tmp_path)
    family = bearer(setup.tokens["family"])
    with TestClient(create_app(setup.settings, encoder=encoder)) as client:
        assert client.get("/v1/photos").status_code == 401
        body = client.get("/v1/photos", params={"k": 50}, headers=family).json()
        assert body["total"] == 4 and sorted(p["id"] for p in body["photos"]) == setup.family_ids
        assert all(p["sha256"] is None and not p["path"].startswith("/") for p in body["photos"])
        theirs = client.get("/v1/photos", params={"collections": "work"}, headers=family)
        unknown = client.get("/v1/photos", params={"collections": "nope"}, headers=family)
        assert theirs.status_code == unknown.status_code == 404
        everyone = client.get("/v1/photos", params={"k": 50}, headers=bearer(setup.tokens["all"])).json()
        assert everyone["total"] == 8
        work = client.get("/v1/photos", params={"collections": "work"}, headers=bearer(setup.tokens["admin"]))
        assert sorted(p["id"] for p in work.json()["photos"]) == setup.work_ids
