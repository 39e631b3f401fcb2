"""A new default model does not strand a library: one indexed with the model shipped as the default
before keeps being searched and extended with it, until it is re-indexed with the new default; naming a
model is obeyed, and the 503 then says which weights the store holds and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.storage.db import make_engine, session_factory
from app.storage.stored_models import stored_model
from cli.context import open_encoder
from models.encoder import Encoder
from models.registry import EARLIER_DEFAULTS, create_encoder, weights_key_of
from tests.builders import photos
from tests.builders.indexing import run_index


def make_settings(tmp_path: Path, db_url: str, **chosen: str) -> Settings:
    # PyTorch towers: no ONNX export of two models in a test
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        device="cpu",
        auth={"required": False},
        inference={"runtime": "torch"},
        **chosen,
    )


@pytest.mark.parametrize("earlier_name", EARLIER_DEFAULTS)
def test_a_library_indexed_with_an_earlier_default_keeps_being_served(
    tmp_path: Path,
    db_url: str,
    encoder: Encoder,
    earlier_name: str,
) -> None:
    earlier = create_encoder(earlier_name, device="cpu")
    assert (
        earlier.weights_key
        == weights_key_of(earlier_name)
        != encoder.weights_key
        == weights_key_of("joint-default")
    )
    folder = tmp_path / "photos"
    photos.copy_shared_photos(folder, "val", 4)
    default = make_settings(tmp_path, db_url)
    run_index(default, earlier, folder)  # as the earlier default indexed it
    sessions = session_factory(make_engine(default.db_url))
    assert "model" not in default.model_fields_set
    assert stored_model(default, sessions) == earlier_name
    with TestClient(create_app(default)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["model"].startswith(earlier.weights_key)
        hits = client.post("/v1/search/text", json={"query": "a dog running", "k": 4}).json()["hits"]
        assert len(hits) == 4
    # new photos join the library with the model it was embedded with, not a second one
    assert open_encoder(default, sessions).weights_key == earlier.weights_key
    assert open_encoder(default).weights_key == encoder.weights_key  # no store to follow: the default

    named = make_settings(tmp_path, db_url, model="joint-default")  # a model asked for is obeyed
    assert stored_model(named, sessions) == "joint-default"
    with TestClient(create_app(named)) as client:
        answer = client.post("/v1/search/text", json={"query": "a dog running"})
        detail = " ".join(answer.json()["detail"].split())
        assert answer.status_code == 503
        assert f"4 photos are embedded by other weights ({earlier.weights_key}" in detail
        assert "photosearch index PATH" in detail and "PHOTOSEARCH_MODEL" in detail

    run_index(named, create_encoder("joint-default", device="cpu"), folder)  # moved to the new default
    assert stored_model(default, sessions) == "joint-default"
    with TestClient(create_app(default)) as client:
        assert client.get("/ready").json()["model"].startswith(encoder.weights_key)
