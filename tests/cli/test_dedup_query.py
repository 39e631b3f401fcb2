"""`photosearch query` collapses near-identical photos (--dedup, the default) and lists every photo with
--no-dedup, over a real indexed folder: a dog photo, its byte copy and mirrored copy, two other dogs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from app.core.config import Settings, get_settings
from app.schemas import SearchResponse
from cli.main import app
from models.encoder import Encoder
from tests.builders.duplicates import DOG, DOG_QUERY, OTHER_DOGS, byte_copy, mirrored, source
from tests.builders.indexing import photo_ids_by_path, run_index

runner = CliRunner()


@pytest.fixture(scope="module")
def dog_ids(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Iterator[list[int]]:
    """Ids of the dog photo and its two copies (original first); the command reads this library."""
    base = tmp_path_factory.mktemp("dedup-query")
    folder = base / "photos"
    folder.mkdir()
    shutil.copyfile(source(DOG), folder / "dog.jpg")
    byte_copy(folder / "dog.jpg", folder / "dog-copy.jpg")
    mirrored(folder / "dog.jpg", folder / "dog-mirrored.jpg")
    for index in OTHER_DOGS[:2]:
        shutil.copyfile(source(index), folder / f"other-{index}.jpg")
    settings = Settings(data_dir=base / "data", database_url=f"sqlite:///{base / 'ps.db'}", device="cpu")
    run_index(settings, encoder, folder)
    ids = photo_ids_by_path(settings)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PHOTOSEARCH_DATA_DIR", str(settings.data_dir))
        env.setenv("PHOTOSEARCH_DATABASE_URL", settings.db_url)
        env.setenv("PHOTOSEARCH_DEVICE", "cpu")
        env.setenv("COLUMNS", "250")
        env.setattr("cli.context.open_encoder", lambda *_args, **_kw: encoder)
        get_settings.cache_clear()
        yield [ids[str(folder / name)] for name in ("dog.jpg", "dog-copy.jpg", "dog-mirrored.jpg")]
    get_settings.cache_clear()


def query_json(*args: str) -> SearchResponse:
    result = runner.invoke(app, ["query", DOG_QUERY, "-k", "10", "--json", *args])
    assert result.exit_code == 0, result.output
    return SearchResponse.model_validate_json(result.stdout)


def test_query_lists_copies_under_one_hit_and_no_dedup_lists_them_all(dog_ids: list[int]) -> None:
    grouped = query_json().hits
    assert len(grouped) == 3  # the dog with its two copies, and the two other dogs
    (dog,) = [hit for hit in grouped if hit.photo.id in dog_ids]
    assert sorted([dog.photo.id, *dog.duplicate_ids]) == sorted(dog_ids)
    assert all(hit.duplicate_ids == [] for hit in grouped if hit is not dog)
    every = query_json("--no-dedup").hits
    assert len(every) == 5 and all(hit.duplicate_ids == [] for hit in every)
    order = [hit.photo.id for hit in every]
    assert dog.duplicate_ids == sorted(dog.duplicate_ids, key=order.index)  # best match first


def test_the_table_shows_how_many_duplicates_and_their_ids(dog_ids: list[int]) -> None:
    (dog,) = [hit for hit in query_json().hits if hit.photo.id in dog_ids]
    shown = f"{dog.photo.id} (+2 duplicates: {dog.duplicate_ids[0]}, {dog.duplicate_ids[1]})"
    result = runner.invoke(app, ["query", DOG_QUERY, "-k", "10"])
    assert result.exit_code == 0, result.output
    assert shown in result.output
    plain = runner.invoke(app, ["query", DOG_QUERY, "-k", "10", "--no-dedup"])
    assert plain.exit_code == 0 and "duplicate" not in plain.output
    assert all(str(pid) in plain.output for pid in dog_ids)
