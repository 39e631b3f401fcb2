"""Near-identical photos collapsed into one hit (dedup), through the real app and model on SQLite and
PostgreSQL, over a library of copies (tests/builders/duplicates.py): a byte copy, a mirrored copy, a
JPEG re-encoded at quality 85 and a burst-like frame of a dog photo, four other dog photos, eight
photos with two copies each, and two more copies of the dog in a second collection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import AuthSettings, Settings
from app.main import create_app
from models.encoder import Encoder
from tests.builders.access import bearer, key_service
from tests.builders.apps import database_url
from tests.builders.duplicates import DOG_QUERY, DuplicateLibrary, write_duplicate_library
from tests.builders.indexing import photo_ids_by_path, run_index

PAGE_QUERY = "people outside on a sunny day"


@dataclass
class Served:
    client: TestClient
    library: DuplicateLibrary
    ids: dict[Path, int]
    headers: dict[str, dict[str, str]]  # key name → auth header: family (that collection only), all

    def id(self, path: Path) -> int:
        return self.ids[path]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, encoder: Encoder
) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("dedup")
    library = write_duplicate_library(base / "photos")
    postgres = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    auth = AuthSettings(required=True, cache_seconds=0.0)
    url = database_url(request.param, base, postgres)
    settings = Settings(data_dir=base / "data", database_url=url, device="cpu", auth=auth)
    run_index(settings, encoder, library.family, collection="family")
    run_index(settings, encoder, library.work, collection="work")
    ids = {Path(path): pid for path, pid in photo_ids_by_path(settings).items()}
    keys = key_service(settings)
    headers = {
        "family": bearer(keys.create("family", collections=["family"])),
        "all": bearer(keys.create("all")),
    }
    with TestClient(create_app(settings, encoder=encoder)) as client:
        yield Served(client, library, ids, headers)


def search(served: Served, path: str = "/v1/search/text", key: str = "all", **body: object) -> list[dict]:
    response = served.client.post(path, json={"k": 100, **body}, headers=served.headers[key])
    assert response.status_code == 200, response.text
    hits: list[dict] = response.json()["hits"]
    return hits


def ids_of(hits: list[dict]) -> list[int]:
    return [hit["photo"]["id"] for hit in hits]


def assert_groups_follow_the_ranking(grouped: list[dict], every: list[dict]) -> None:
    """Each hit leads its duplicates in the order of the ungrouped ranking, and together the hits
    and their duplicates are exactly the photos of that ranking, each once."""
    order = {pid: rank for rank, pid in enumerate(ids_of(every))}
    listed = [pid for hit in grouped for pid in [hit["photo"]["id"], *hit["duplicate_ids"]]]
    assert sorted(listed) == sorted(order)
    for hit in grouped:
        members = [hit["photo"]["id"], *hit["duplicate_ids"]]
        assert members == sorted(members, key=order.__getitem__)
    leaders = ids_of(grouped)
    assert leaders == sorted(leaders, key=order.__getitem__)


def test_copies_of_a_photo_are_one_text_hit_and_other_dogs_stay_apart(served: Served) -> None:
    lib = served.library
    dog = {served.id(p) for p in lib.dog}
    grouped = search(served, query=DOG_QUERY, key="family")
    every = search(served, query=DOG_QUERY, key="family", dedup=False)
    assert len(every) == len(dog) + len(lib.other_dogs) + 3 * len(lib.paged)
    assert all(hit["duplicate_ids"] == [] for hit in every)
    dog_hits = [hit for hit in grouped if hit["photo"]["id"] in dog]
    assert len(dog_hits) == 1
    assert {dog_hits[0]["photo"]["id"], *dog_hits[0]["duplicate_ids"]} == dog
    assert dog_hits[0]["photo"]["id"] == ids_of(every)[min(ids_of(every).index(i) for i in dog)]
    for other in lib.other_dogs:
        (hit,) = [h for h in grouped if h["photo"]["id"] == served.id(other)]
        assert hit["duplicate_ids"] == []
    for group in lib.paged:
        leaders = [h for h in grouped if h["photo"]["id"] in {served.id(p) for p in group}]
        assert len(leaders) == 1 and len(leaders[0]["duplicate_ids"]) == 2
    assert_groups_follow_the_ranking(grouped, every)


def test_search_by_a_copy_groups_the_others_and_leaves_the_query_photo_out(served: Served) -> None:
    lib = served.library
    query = served.id(lib.dog[2])  # the mirrored copy
    others = {served.id(p) for p in lib.dog} - {query}
    grouped = search(served, "/v1/search/image", key="family", photo_id=query)
    every = search(served, "/v1/search/image", key="family", photo_id=query, dedup=False)
    assert query not in ids_of(every)
    first = grouped[0]  # the copies are the closest photos there are
    assert {first["photo"]["id"], *first["duplicate_ids"]} == others
    assert all(query not in [h["photo"]["id"], *h["duplicate_ids"]] for h in grouped)
    assert set(ids_of(grouped)).isdisjoint(others - {first["photo"]["id"]})
    assert_groups_follow_the_ranking(grouped, every)


def test_uploads_group_and_multipart_dedup_false_lists_every_copy(served: Served) -> None:
    lib = served.library
    dog = {served.id(p) for p in lib.dog}
    upload = {"file": ("dog.jpg", lib.dog[0].read_bytes(), "image/jpeg")}
    headers = served.headers["family"]
    responses = {
        flag: served.client.post("/v1/search/image", files=upload, data={"k": "5", **flags}, headers=headers)
        for flag, flags in (("on", {}), ("off", {"dedup": "false"}))
    }
    assert all(r.status_code == 200 for r in responses.values()), responses
    grouped, every = (responses[flag].json()["hits"] for flag in ("on", "off"))
    assert {grouped[0]["photo"]["id"], *grouped[0]["duplicate_ids"]} == dog
    assert set(ids_of(every)) == dog and all(h["duplicate_ids"] == [] for h in every)


def test_pages_are_full_and_follow_on_without_overlap_or_gap(served: Served) -> None:
    whole = search(served, query=PAGE_QUERY, key="family")
    groups = len(served.library.paged) + 1 + len(served.library.other_dogs)
    assert len(whole) == groups
    for k in (3, 4):
        pages = [search(served, query=PAGE_QUERY, key="family", k=k, offset=o) for o in range(0, groups, k)]
        assert [len(p) for p in pages] == [min(k, groups - o) for o in range(0, groups, k)]
        assert [hit for page in pages for hit in page] == whole
    assert search(served, query=PAGE_QUERY, key="family", offset=groups) == []


def test_a_page_stays_full_when_the_candidate_pool_has_to_grow(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three copies a photo: a pool of 2 candidates holds one or two groups, so it must grow (×4) until
    the page is full; the pages are those of the grouping over every candidate."""
    query = {"photo_id": served.id(served.library.paged[0][0])}
    whole = search(served, "/v1/search/image", key="family", **query)
    assert len(whole) == len(served.library.paged) + 1 + len(served.library.other_dogs)
    monkeypatch.setattr("app.services.search.dedup_pool", lambda wanted: 2)
    for offset in (0, 4, 8):
        page = search(served, "/v1/search/image", key="family", k=4, offset=offset, **query)
        assert page == whole[offset : offset + 4]


def test_a_key_never_sees_duplicates_from_a_collection_outside_its_scope(served: Served) -> None:
    lib = served.library
    elsewhere = {served.id(p) for p in lib.dog_elsewhere}
    for path in ("/v1/search/text", "/v1/search/image"):
        body = {"query": DOG_QUERY} if path.endswith("text") else {"photo_id": served.id(lib.dog[1])}
        scoped = search(served, path, key="family", **body)
        listed = {pid for hit in scoped for pid in [hit["photo"]["id"], *hit["duplicate_ids"]]}
        assert listed.isdisjoint(elsewhere)
        everywhere = search(served, path, key="all", **body)
        (dog_hit,) = [
            h for h in everywhere if served.id(lib.dog[0]) in [h["photo"]["id"], *h["duplicate_ids"]]
        ]
        assert elsewhere <= {dog_hit["photo"]["id"], *dog_hit["duplicate_ids"]}


def test_dedup_works_with_filters_date_order_and_query_arithmetic(served: Served) -> None:
    lib = served.library
    copies = {served.id(p) for p in lib.dog[1:]}
    in_copies = search(served, query=DOG_QUERY, key="family", folders=["copies"])
    dog_hits = [h for h in in_copies if h["photo"]["id"] in copies]
    assert len(dog_hits) == 1 and {dog_hits[0]["photo"]["id"], *dog_hits[0]["duplicate_ids"]} == copies
    # no photo has a date taken: date order is relevance (cosine) order, grouped over the same pool
    newest = search(served, query=DOG_QUERY, key="family", sort="newest")
    assert_groups_follow_the_ranking(
        newest, search(served, query=DOG_QUERY, key="family", sort="newest", dedup=False)
    )
    assert len([h for h in newest if h["photo"]["id"] in copies | {served.id(lib.dog[0])}]) == 1
    mixed = search(served, query="a brown dog + long grass", key="family")
    dog = {served.id(p) for p in lib.dog}
    assert len([h for h in mixed if h["photo"]["id"] in dog]) == 1
    assert_groups_follow_the_ranking(
        mixed, search(served, query="a brown dog + long grass", dedup=False, key="family")
    )


def test_dedup_that_is_not_a_boolean_is_a_422_naming_the_field(served: Served) -> None:
    headers = served.headers["family"]
    for bad in ("maybe", 2, [True]):
        response = served.client.post(
            "/v1/search/text", json={"query": "a dog", "dedup": bad}, headers=headers
        )
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "dedup"] and "boolean" in error["msg"]
    upload = {"file": ("dog.jpg", served.library.dog[0].read_bytes(), "image/jpeg")}
    response = served.client.post("/v1/search/image", files=upload, data={"dedup": "maybe"}, headers=headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "dedup"
