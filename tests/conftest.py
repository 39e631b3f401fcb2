"""Shared fixtures: the real default model, real SQLite and PostgreSQL, real photo folders."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.config import AuthSettings, Settings
from models.encoder import Encoder
from tests.builders.databases import reset_postgres
from tests.builders.metadata_photos import Shot, library_app
from tests.builders.photos import captioned_subset, copy_shared_photos
from tests.builders.tiny_models import RERANK, tiny_config, tiny_options

# Auth is on by default; the suite's many apps built from Settings(...) run as a loopback server with
# auth off, and the tests of API keys (tests/api/test_auth*.py) turn it on explicitly.
os.environ["PHOTOSEARCH_AUTH__REQUIRED"] = "false"
AUTH_OFF = AuthSettings(required=False)
# A shipped model's caption bank (45,432 captions) takes minutes to embed on a CPU (the default's MPNet
# tower about 10 on two cores): the suite's index runs leave it to annotation (the tests of the bank at
# index time turn it on, tests/cli/test_caption_commands.py), and its many data folders share one cache
# of it (keyed by model and file hashes, so never stale) across runs.
os.environ["PHOTOSEARCH_INDEXER__CAPTION_BANK"] = "false"
os.environ.setdefault(
    "PHOTOSEARCH_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "photosearch-cache")
)

PG_ADMIN_URL = os.environ.get(
    "PHOTOSEARCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The shipped default model, on the CPU (loads the pretrained towers once per run)."""
    from models.registry import create_encoder

    return create_encoder("joint-default", device="cpu")


@pytest.fixture(scope="session")
def minilm_encoder() -> Encoder:
    """The shipped Lite1 + MiniLM model (joint-default-v6), on the CPU: the tests that embed a whole real
    caption bank use it. Its bank is the default's caption file, embedded through a text tower that takes
    about 2 minutes for it on a 2-core machine, where the default's MPNet tower takes 10 (int8) to 20
    (PyTorch fp32); the bank's code path is the same for every model."""
    from models.registry import create_encoder

    return create_encoder("joint-default-v6", device="cpu")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for this test run, dropped afterwards."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"photosearch_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on both databases, each time from an empty schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'photosearch.db'}"
    url: str = request.getfixturevalue("postgres_url")
    reset_postgres(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, device="cpu", auth=AUTH_OFF)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", device="cpu", auth=AUTH_OFF)


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """12 real captioned photos (val split) plus captions.jsonl, in tmp/photos."""
    folder = tmp_path / "photos"
    copy_shared_photos(folder, "val", 12)
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 train + 16 val real photos in the captions.jsonl layout."""
    return captioned_subset(tmp_path_factory.mktemp("zoo-tiny"), train=32, val=16)


@pytest.fixture(scope="session")
def rerank_checkpoint(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny joint model with a cross-attention re-ranker, trained for 2 epochs."""
    from models.training.train import train_joint

    tmp = tmp_path_factory.mktemp("rerank")
    out = tmp / "rerank.safetensors"
    train_joint(tiny_config("transformer", reranker=RERANK), tiny_data, out, tiny_options(tmp, epochs=2))
    return out


@pytest.fixture
def cli_env(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The environment a `photosearch` command reads: a temp data dir on either database, the CPU,
    decoding in-process; yields the database URL."""
    from app.core.config import get_settings

    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PHOTOSEARCH_DATABASE_URL", db_url)
    monkeypatch.setenv("PHOTOSEARCH_DEVICE", "cpu")
    monkeypatch.setenv("PHOTOSEARCH_INDEXER__WORKERS", "0")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


# Tests that load the real default model (directly or through an app, an index run or a trained
# checkpoint) take seconds each on a CPU: they are `slow`, so `make test-fast` leaves them out and
# `make test` (what CI runs) keeps them.
SLOW_FIXTURES = frozenset({"encoder", "minilm_encoder", "rerank_checkpoint", "tiny_data"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def metadata_library(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, encoder: Encoder
) -> Iterator[tuple[TestClient, dict[int, Shot]]]:
    """The app over the metadata library (tests/builders/metadata_photos.py), one per test module and
    database; photo id → what was written into that photo."""
    postgres = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with library_app(request.param, tmp_path_factory.mktemp("library"), postgres, encoder) as app:
        yield app
