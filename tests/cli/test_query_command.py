"""`photosearch query` with filters, date order, pages, search by example and JSON output, over a real
indexed library with known folders, cameras and dates (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from PIL import Image
from rich.color import Color
from rich.style import Style
from typer.testing import CliRunner

from app.core.config import Settings, get_settings
from app.schemas import SearchResponse
from cli.main import app
from cli.render import THUMBNAIL_COLUMNS, half_block_thumbnail
from indexer.labels import LabelOptions
from models.encoder import Encoder
from tests.builders.databases import reset_postgres
from tests.builders.indexing import photo_ids_by_path, run_index, tags_by_path
from tests.builders.metadata_photos import Shot, write_library

runner = CliRunner()
QUERY = "a dog running on the grass"
LABELS = ("dog", "cat", "person", "food", "building", "vehicle")


@dataclass(frozen=True)
class Library:
    root: Path  # the indexed folder
    shots: dict[int, Shot]  # photo id → what was written into that photo
    paths: dict[int, Path]
    tags: dict[int, set[str]]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def library(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, encoder: Encoder
) -> Iterator[Library]:
    """The metadata library indexed (each photo tagged with its one best label), and the environment
    `photosearch query` reads pointed at it; the command gets the already loaded model."""
    base = tmp_path_factory.mktemp("query")
    shots = write_library(base / "photos")
    url = f"sqlite:///{base / 'photosearch.db'}"
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        reset_postgres(url)
    settings = Settings(data_dir=base / "data", database_url=url, device="cpu")
    run_index(settings, encoder, base / "photos", labels=LabelOptions(LABELS, top_k=1, min_probability=0.0))
    ids, tags = photo_ids_by_path(settings), tags_by_path(settings)
    files = {base / "photos" / shot.folder / shot.name: shot for shot in shots}
    paths = {ids[str(path)]: path for path in files}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PHOTOSEARCH_DATA_DIR", str(base / "data"))
        env.setenv("PHOTOSEARCH_DATABASE_URL", url)
        env.setenv("PHOTOSEARCH_DEVICE", "cpu")
        env.setenv("COLUMNS", "200")
        env.setattr(
            "cli.context.open_encoder", lambda _settings, *_more, **_kw: encoder
        )  # the same model, loaded once
        get_settings.cache_clear()
        yield Library(
            base / "photos",
            {pid: files[path] for pid, path in paths.items()},
            paths,
            {pid: tags[str(path)] for pid, path in paths.items()},
        )
    get_settings.cache_clear()


def run_query(*args: str) -> SearchResponse:
    result = runner.invoke(app, ["query", *args, "--json"])
    assert result.exit_code == 0, result.output
    return SearchResponse.model_validate_json(result.stdout)


def hit_ids(*args: str) -> list[int]:
    return [hit.photo.id for hit in run_query(*args).hits]


def ids_where(library: Library, keep: object) -> set[int]:
    return {pid for pid, shot in library.shots.items() if keep(shot)}  # type: ignore[operator]


def test_json_output_is_the_api_response_best_first(library: Library) -> None:
    result = runner.invoke(app, ["query", QUERY, "-k", "5", "--json"])
    assert result.exit_code == 0, result.output
    raw = json.loads(result.stdout)
    assert set(raw) == {"model", "k", "offset", "hits"} and raw["k"] == 5 and raw["offset"] == 0
    response = SearchResponse.model_validate(raw)
    assert len(response.hits) == 5
    # ordered by the re-ranker or the query bank when the model has one, else by cosine
    order = [hit.rerank_score or hit.rank_score or hit.score for hit in response.hits]
    assert order == sorted(order, reverse=True)
    for hit in response.hits:
        assert Path(hit.photo.path) == library.paths[hit.photo.id]
        assert hit.photo.tags == sorted(library.tags[hit.photo.id])


def test_camera_and_folder_options_narrow_to_exactly_those_photos(library: Library) -> None:
    acme = ids_where(library, lambda s: s.camera == ("Acme", "Shooter 3000"))
    bolt = ids_where(library, lambda s: s.camera == ("Bolt", "Zoom X"))
    assert len(acme) == 3 and len(bolt) == 2
    assert set(hit_ids(QUERY, "-k", "12", "--camera", "acme")) == acme
    assert (
        set(hit_ids(QUERY, "-k", "12", "--camera", "ACME shooter 3000", "--camera", "bolt zoom x"))
        == acme | bolt
    )
    alps = ids_where(library, lambda s: s.folder == "trips/alps")
    assert set(hit_ids(QUERY, "-k", "12", "--folder", "trips/alps")) == alps
    trips = ids_where(library, lambda s: s.folder.startswith("trips"))
    assert len(trips) == 8 and set(hit_ids(QUERY, "-k", "12", "--folder", "trips")) == trips
    assert set(hit_ids(QUERY, "-k", "12", "--folder", "trips", "--camera", "bolt")) == bolt & trips


def test_date_options_keep_whole_days_and_leave_undated_photos_out(library: Library) -> None:
    found = hit_ids(QUERY, "-k", "12", "--taken-after", "2021-01-07", "--taken-before", "2021-01-09")
    expected = ids_where(library, lambda s: s.taken is not None and 7 <= s.taken.day <= 9)
    assert len(expected) == 3 and set(found) == expected
    after = hit_ids(QUERY, "-k", "12", "--taken-after", "2021-01-11T00:00:00")
    assert set(after) == ids_where(library, lambda s: s.taken is not None and s.taken.day >= 11)


def test_sort_orders_by_date_taken_with_undated_photos_last(library: Library) -> None:
    def taken(pid: int) -> object:
        return library.shots[pid].taken

    newest = hit_ids(QUERY, "-k", "12", "--sort", "newest")
    dated = [pid for pid in newest if taken(pid) is not None]
    assert len(newest) == 12 and newest[:8] == dated
    assert [taken(pid) for pid in dated] == sorted((taken(pid) for pid in dated), reverse=True)  # type: ignore[type-var]
    oldest = hit_ids(QUERY, "-k", "12", "--sort", "oldest")
    assert oldest[:8] == dated[::-1]
    assert set(oldest[8:]) == set(newest[8:]) == ids_where(library, lambda s: s.taken is None)


def test_offset_and_min_score_page_and_cut_the_ranking(library: Library) -> None:
    everything = run_query(QUERY, "-k", "12").hits
    assert hit_ids(QUERY, "-k", "4", "--offset", "4") == [hit.photo.id for hit in everything[4:8]]
    scores = sorted((hit.score for hit in everything), reverse=True)
    threshold = (scores[3] + scores[4]) / 2  # between the 4th and 5th best cosine
    kept = hit_ids(QUERY, "-k", "12", "--min-score", f"{threshold:.6f}")
    assert kept == [hit.photo.id for hit in everything if hit.score >= threshold] and len(kept) == 4


def test_tag_option_keeps_only_photos_with_that_tag(library: Library) -> None:
    counts = {label: sum(label in tags for tags in library.tags.values()) for label in LABELS}
    label = max(counts, key=lambda name: counts[name])
    assert 0 < counts[label] < 12  # the tag narrows: some photos have it, not all
    found = hit_ids(QUERY, "-k", "12", "--tag", label)
    assert set(found) == {pid for pid, tags in library.tags.items() if label in tags}


def test_image_option_finds_the_photo_itself_first(library: Library) -> None:
    alps = sorted(ids_where(library, lambda s: s.folder == "trips/alps"))
    example = alps[0]
    response = run_query("--image", str(library.paths[example]), "-k", "3")
    assert response.hits[0].photo.id == example and response.hits[0].score > 0.95
    assert response.hits[1].score < response.hits[0].score
    elsewhere = hit_ids("--image", str(library.paths[example]), "-k", "12", "--folder", "trips/alps")
    assert set(elsewhere) == set(alps) and elsewhere[0] == example
    table = runner.invoke(app, ["query", "--image", str(library.paths[example]), "-k", "2"])
    assert table.exit_code == 0 and library.paths[example].name in table.stdout


def test_image_that_is_not_a_photo_is_one_line_error(library: Library, tmp_path: Path) -> None:
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not a photo")
    assert_one_line_error(runner.invoke(app, ["query", "--image", str(text_file)]), "not a usable image")


def assert_one_line_error(result: Result, words: str) -> None:
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and words in message, message
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "either TEXT"),
        (["a dog", "--image", "photo.jpg"], "not both"),
        (["a dog", "--taken-after", "2021-13-01"], "--taken-after: "),
        (["a dog", "--taken-before", "last week"], "--taken-before: "),
        (["a dog", "--taken-after", "2021-02-01", "--taken-before", "2021-01-31"], "is later than"),
        (["a dog", "--sort", "best"], "--sort: "),
        (["a dog", "--min-score", "3"], "--min-score: "),
        (["a dog", "--offset", "-1"], "--offset: "),
        (["--image", "no-such-photo.jpg"], "cannot read --image no-such-photo.jpg"),
    ],
)
def test_bad_values_are_one_line_errors(cli_env: str, args: list[str], words: str) -> None:
    assert_one_line_error(runner.invoke(app, ["query", *args]), words)


def test_a_camera_nobody_has_or_an_offset_past_the_end_is_an_empty_page(library: Library) -> None:
    assert hit_ids(QUERY, "--camera", "Nikon D850") == []
    assert hit_ids(QUERY, "-k", "5", "--offset", "12") == []
    table = runner.invoke(app, ["query", QUERY, "--folder", "no/such/folder"])
    assert table.exit_code == 0 and table.stderr == "", table.output


def test_thumbnails_show_each_hit_as_coloured_blocks(library: Library) -> None:
    result = runner.invoke(app, ["query", QUERY, "-k", "3", "--thumbnails"])
    assert result.exit_code == 0, result.output
    block_lines = [line for line in result.stdout.splitlines() if "▀" * THUMBNAIL_COLUMNS in line]
    assert len(block_lines) >= 3 * 4  # 3 photos, each at least 4 rows of one full-width block run


def test_half_block_thumbnail_puts_upper_pixels_in_front_and_lower_ones_behind(tmp_path: Path) -> None:
    image = Image.new("RGB", (64, 64), (200, 10, 10))
    image.paste((10, 20, 220), (0, 32, 64, 64))  # upper half red, lower half blue
    image.save(tmp_path / "halves.png")
    text = half_block_thumbnail(str(tmp_path / "halves.png"), columns=8)
    lines = text.plain.split("\n")
    assert lines == ["▀" * 8] * 4  # 8 × 8 pixels, 2 a character: square on a terminal's tall cells
    first, last = text.spans[0].style, text.spans[-1].style
    assert isinstance(first, Style) and isinstance(last, Style)
    assert first.color == first.bgcolor == Color.from_rgb(200, 10, 10)
    assert last.color == last.bgcolor == Color.from_rgb(10, 20, 220)
    assert half_block_thumbnail(str(tmp_path / "moved-away.jpg")).plain == ""
