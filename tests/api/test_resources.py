"""Limits on what one request can cost: body size, pixels, labels and prompts, concurrent heavy work,
and memory given back after a burst of big uploads."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.core.config import ApiSettings, Settings
from app.main import create_app
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.apps import indexed_settings


@pytest.fixture(scope="module")
def base_settings(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Settings:
    base = tmp_path_factory.mktemp("resources")
    return indexed_settings(base, encoder, f"sqlite:///{base / 'photosearch.db'}", count=4)


@pytest.fixture(scope="module")
def client(base_settings: Settings, encoder: Encoder) -> Iterator[TestClient]:
    with TestClient(create_app(base_settings, encoder=encoder)) as test_client:
        yield test_client


def upload(data: bytes, **fields: str | list[str]) -> dict:
    return {"files": {"file": ("q.png", data, "image/png")}, "data": fields}


def test_json_bodies_are_capped_before_they_are_read(client: TestClient) -> None:
    declared = client.post(
        "/v1/search/text",
        content=b"{" + b" " * 50_000_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert declared.status_code == 413 and declared.json() == {
        "detail": "request body is over the limit of 262,144 bytes"
    }

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"query": "'
        for _ in range(100):
            yield b"a" * 10_000

    for path in ("/v1/search/text", "/v1/search/image", "/v1/classify"):
        streamed = client.post(path, content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413, (path, streamed.text)
        assert "over the limit of 262,144 bytes" in streamed.json()["detail"]
    assert client.post("/v1/search/text", json={"query": "a dog", "k": 1}).status_code == 200


def test_uploads_over_the_pixel_limit_are_refused_from_the_header(client: TestClient) -> None:
    big = photos.png_bomb(7_000)  # 49 MP: under the indexer's 100 MP, over the 40 MP upload limit
    for path in ("/v1/search/image", "/v1/annotate"):
        answer = client.post(path, **upload(big))
        assert answer.status_code == 422 and "over the limit of 40,000,000" in answer.json()["detail"]
    answer = client.post("/v1/classify", **upload(big, labels=["dog", "cat"]))
    assert answer.status_code == 422 and "over the limit of 40,000,000" in answer.json()["detail"]


def test_jpeg_uploads_are_decoded_at_reduced_scale(client: TestClient, encoder: Encoder) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (120, 80, 40)).save(buffer, "JPEG", quality=80)
    vectors = client.app.state.services.search.vectors  # type: ignore[attr-defined]
    image = vectors.decode_upload(buffer.getvalue())
    side = 2 * encoder.preprocess.image_size
    assert min(image.size) >= side and image.size[0] * image.size[1] <= 4000 * 3000 / 16
    assert client.post("/v1/search/image", **upload(buffer.getvalue(), k="1")).status_code == 200


def test_labels_and_prompts_are_capped(client: TestClient) -> None:
    photo_id = client.post("/v1/search/text", json={"query": "a dog", "k": 1}).json()["hits"][0]["photo"][
        "id"
    ]
    cases = [
        ({"labels": [f"label {i}" for i in range(101)]}, "101 labels given; the limit is 100"),
        ({"labels": ["dog", "x" * 201]}, "characters; the limit is 200"),
        ({"labels": ["dog", "cat"], "prompt": "a photo of {}" + " very" * 40}, "the limit is 200"),
    ]
    for fields, fragment in cases:
        answer = client.post("/v1/classify", json={"photo_id": photo_id, **fields})
        assert answer.status_code == 422 and fragment in answer.json()["detail"], answer.text
    labels = [f"label {i}" for i in range(100)]
    assert client.post("/v1/classify", json={"photo_id": photo_id, "labels": labels}).status_code == 200


def test_a_request_finding_no_free_slot_is_told_to_retry(base_settings: Settings, encoder: Encoder) -> None:
    settings = base_settings.model_copy(update={"api": ApiSettings(heavy_slots=1, busy_wait_s=0.2)})
    with TestClient(create_app(settings, encoder=encoder)) as client:
        gate = client.app.state.services.search.gate  # type: ignore[attr-defined]
        with gate.slot():  # another request's embedding holds the only slot
            busy = client.post("/v1/search/text", json={"query": "a dog"})
        assert busy.status_code == 429 and "retry shortly" in busy.json()["detail"]
        assert client.post("/v1/search/text", json={"query": "a dog"}).status_code == 200


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_memory_returns_after_a_burst_of_big_uploads(client: TestClient) -> None:
    accepted = photos.png_bomb(6_000)  # 36 MP: decoded (108 MB as RGB)
    refused = photos.png_bomb(9_990)  # ~100 MP: refused from its header
    client.post("/v1/search/image", **upload(accepted, k="1"))  # first use: lazy allocations settle
    start = peak = resident_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, resident_bytes())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with ThreadPoolExecutor(8) as pool:
        bodies = [accepted, refused] * 4
        answers = list(pool.map(lambda data: client.post("/v1/search/image", **upload(data, k="1")), bodies))
    done.set()
    sampler.join()
    end = resident_bytes()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 4 + [422] * 4, [a.text for a in answers]
    assert peak - start > 100 * 2**20  # the burst really decoded big images
    assert end - start < 150 * 2**20, f"start {start >> 20} MB, peak {peak >> 20} MB, end {end >> 20} MB"


def test_health_answers_while_a_burst_holds_every_worker_thread(
    base_settings: Settings, encoder: Encoder
) -> None:
    settings = base_settings.model_copy(update={"api": ApiSettings(heavy_slots=1, busy_wait_s=3)})
    with TestClient(create_app(settings, encoder=encoder)) as client:
        gate = client.app.state.services.search.gate  # type: ignore[attr-defined]
        with gate.slot(), ThreadPoolExecutor(48) as pool:  # more waiting searches than worker threads (40)
            waiting = [
                pool.submit(client.post, "/v1/search/text", json={"query": "a dog"}) for _ in range(48)
            ]
            time.sleep(0.5)
            started = time.perf_counter()
            health = client.get("/health")
            took = time.perf_counter() - started
            statuses = sorted(f.result().status_code for f in waiting)
    assert health.status_code == 200 and took < 1.0, took
    assert set(statuses) == {429}  # the burst was told to retry, not left hanging
