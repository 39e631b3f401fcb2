"""Date, folder and camera filters and date order, through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from tests.builders.metadata_photos import Shot

QUERY = "a dog running on the grass"


@pytest.fixture
def library(
    metadata_library: tuple[TestClient, dict[int, Shot]],
) -> tuple[TestClient, dict[int, Shot]]:
    return metadata_library


def search(client: TestClient, **fields: object) -> list[int]:
    response = client.post("/v1/search/text", json={"query": QUERY, "k": 12, **fields})
    assert response.status_code == 200, response.text
    return [hit["photo"]["id"] for hit in response.json()["hits"]]


def ids_where(shots: dict[int, Shot], keep: object) -> set[int]:
    return {pid for pid, shot in shots.items() if keep(shot)}  # type: ignore[operator]


def test_a_camera_filter_matching_3_photos_returns_exactly_those_3(library) -> None:
    client, shots = library
    acme = ids_where(shots, lambda s: s.camera == ("Acme", "Shooter 3000"))
    assert len(acme) == 3
    for camera in ("acme", "ACME Shooter 3000", "shooter 3000"):
        assert set(search(client, cameras=[camera], k=3)) == acme
    bolt = ids_where(shots, lambda s: s.camera == ("Bolt", "Zoom X"))
    assert set(search(client, cameras=["Acme", "bolt zoom x"])) == acme | bolt
    assert search(client, cameras=["Nobody Makes This"]) == []  # unknown camera: empty, not an error


def test_a_folder_matches_itself_and_everything_below(library) -> None:
    client, shots = library
    assert set(search(client, folders=["trips"])) == ids_where(shots, lambda s: s.folder.startswith("trips"))
    alps = ids_where(shots, lambda s: s.folder == "trips/alps")
    assert set(search(client, folders=["trips/alps/"], k=4)) == alps
    assert search(client, folders=["trip"]) == []  # a name prefix is not a folder


def test_dates_taken_are_inclusive_and_undated_photos_are_left_out(library) -> None:
    client, shots = library
    # a date alone covers its whole day: photos taken at 10:00 on the 8th are before "2021-01-08"
    got = set(search(client, taken_after="2021-01-06", taken_before="2021-01-08"))
    assert got == ids_where(shots, lambda s: s.taken and 6 <= s.taken.day <= 8)
    assert set(search(client, taken_after="2021-01-01")) == ids_where(shots, lambda s: s.taken is not None)
    before_ten = set(search(client, taken_before="2021-01-08T09:59:59"))  # a time is exact
    assert before_ten == ids_where(shots, lambda s: s.taken and s.taken.day < 8)
    both = search(client, taken_after="2021-01-05", cameras=["acme"], folders=["trips/alps"])
    assert set(both) == ids_where(
        shots, lambda s: s.folder == "trips/alps" and s.camera and s.camera[0] == "Acme"
    )


def test_newest_and_oldest_order_by_date_taken_with_undated_photos_last_across_pages(library) -> None:
    client, shots = library
    newest = [pid for offset in (0, 5, 10) for pid in search(client, sort="newest", k=5, offset=offset)]
    assert len(newest) == 12 and len(set(newest)) == 12
    dates = [shots[pid].taken for pid in newest]
    dated = [d for d in dates if d is not None]
    assert dated == sorted(dated, reverse=True) and dates[len(dated) :] == [None] * 4
    oldest = search(client, sort="oldest")
    assert [shots[pid].taken for pid in oldest][:8] == sorted(dated)
    relevance = search(client)
    assert search(client, sort="relevance") == relevance and relevance != newest


def test_image_search_takes_the_same_filters_as_form_fields_and_json(library) -> None:
    client, shots = library
    acme = ids_where(shots, lambda s: s.camera == ("Acme", "Shooter 3000"))
    query_id = next(pid for pid, s in shots.items() if s.taken is None)
    body = {"photo_id": query_id, "cameras": ["acme"], "sort": "oldest"}
    hits = client.post("/v1/search/image", json=body).json()["hits"]
    assert [h["photo"]["id"] for h in hits] == sorted(acme, key=lambda pid: shots[pid].taken or datetime.max)
    thumbnail = client.get(f"/v1/photos/{query_id}/file").content
    form = {"folders": "trips/alps", "taken_before": "2021-01-10", "sort": "newest"}
    response = client.post("/v1/search/image", files={"file": ("q.jpg", thumbnail, "image/jpeg")}, data=form)
    assert response.status_code == 200, response.text
    got = [h["photo"]["id"] for h in response.json()["hits"]]
    expected = ids_where(shots, lambda s: s.folder == "trips/alps" and s.taken and s.taken.day <= 10)
    assert got == sorted(expected, key=lambda pid: shots[pid].taken, reverse=True)


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"taken_after": "2021-02-01", "taken_before": "2021-01-01"}, "later than taken_before"),
        ({"taken_after": "2021-13-01"}, "month must be in 1..12"),
        ({"taken_before": "last tuesday"}, "valid datetime or date"),
        ({"sort": "random"}, "'relevance', 'newest' or 'oldest'"),
        ({"folders": ["a\x00b"]}, "NUL"),
    ],
)
def test_bad_dates_order_or_sort_are_422_saying_why(library, fields: dict, detail: str) -> None:
    client, _ = library
    response = client.post("/v1/search/text", json={"query": QUERY, **fields})
    assert response.status_code == 422, response.text
    assert detail in str(response.json()["detail"])
