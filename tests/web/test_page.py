"""The search page in a real headless Chromium, against the real app serving 12 indexed photos."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.config import Settings
from app.main import create_app
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.apps import indexed_settings
from tests.builders.browser import chromium, require_chromium, serve
from tests.builders.indexing import photo_ids_by_path, run_index
from tests.builders.metadata_photos import write_library

pytestmark = pytest.mark.slow

SCORE = re.compile(r"^score (-?\d\.\d{3})$")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, minilm_encoder: Encoder) -> Iterator[tuple[str, Path]]:
    """The base URL of a server over 12 real captioned photos, and their folder. The detail view annotates
    a photo from the model's real caption bank too: the model is joint-default-v6, whose bank embeds in
    minutes here (tests/conftest.py)."""
    require_chromium()
    encoder = minilm_encoder
    base = tmp_path_factory.mktemp("web")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PHOTOSEARCH_AUTH__REQUIRED", "false")  # API keys have their own test below
        settings = indexed_settings(base, encoder, f"sqlite:///{base / 'photosearch.db'}")
    with serve(create_app(settings, encoder)) as url:
        yield url, base / "photos"


@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 1280, "height": 900}


@pytest.fixture
def page(viewport: dict[str, int]) -> Iterator[Any]:
    require_chromium()
    with chromium() as browser:
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        assert not errors, errors  # the page's script never threw
        context.close()


def card_scores(page: Any) -> list[float]:
    texts = page.locator("#results .card .score").all_inner_texts()
    scores = []
    for text in texts:
        match = SCORE.match(text.strip())
        assert match, text
        scores.append(float(match.group(1)))
    return scores


def card_ids(page: Any) -> list[int]:
    return [
        int(i) for i in page.locator("#results .card").evaluate_all("cs => cs.map(c => c.dataset.photoId)")
    ]


def wait_for_cards(page: Any, count: int | None = None) -> None:
    if count is None:
        page.wait_for_selector("#results .card")
    else:
        page.wait_for_function("n => document.querySelectorAll('#results .card').length === n", arg=count)
    page.wait_for_function("!/…/.test(document.getElementById('message').textContent)")


def drop_file(page: Any, path: Path) -> None:
    """Drop a real file on the drop zone the way a browser does: a drop event carrying a DataTransfer."""
    data = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            const zone = document.getElementById("drop-zone");
            const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
            zone.dispatchEvent(new DragEvent("dragover", init));
            zone.dispatchEvent(new DragEvent("drop", init));
        }""",
        [data, path.name],
    )


def test_text_search_fills_the_grid_with_scored_thumbnails_and_a_filter_narrows_it(
    page: Any, site: tuple[str, Path]
) -> None:
    url, _ = site
    page.goto(url)
    page.wait_for_function("document.getElementById('server-state').textContent.includes('12 photos')")
    page.fill("#query", "a dog running on the grass")
    wait_for_cards(page)
    scores = card_scores(page)
    assert len(scores) == 12  # in the model's rank order, which need not be the cosine's
    assert all(page.locator("#results .card .caption").all_inner_texts())
    # every thumbnail arrives as an image the browser decoded
    page.wait_for_function(
        "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
    )

    threshold = math.floor(scores[0] * 100) / 100  # the slider's step is 0.01
    page.eval_on_selector(
        "#filter-min-score",
        "(el, v) => { el.max = '1'; el.value = String(v); el.dispatchEvent(new Event('input')); }",
        threshold,
    )
    expected = sum(s >= threshold for s in scores)
    wait_for_cards(page, expected)
    assert expected < 12 and all(s >= threshold for s in card_scores(page))

    page.eval_on_selector(
        "#filter-min-score", "el => { el.value = '1'; el.dispatchEvent(new Event('input')); }"
    )
    wait_for_cards(page, 0)
    page.wait_for_function("document.getElementById('message').textContent.includes('No photos match')")


def test_dropped_image_and_more_like_this_search_by_example(page: Any, site: tuple[str, Path]) -> None:
    url, folder = site
    page.goto(url)
    photo = sorted(folder.glob("*.jpg"))[3]
    drop_file(page, photo)
    wait_for_cards(page, 12)
    assert "Photos like the image" in page.inner_text("#example")
    first = page.locator("#results .card").first
    assert photo.name in first.locator(".open").get_attribute("title")  # the photo itself, indexed
    assert card_scores(page)[0] > 0.99

    second = page.locator("#results .card").nth(1)
    like_id = int(second.get_attribute("data-photo-id"))
    second.get_by_role("button", name="More like this").click()
    page.wait_for_function("document.getElementById('example').textContent.includes('#')")
    wait_for_cards(page, 11)  # every other photo: the query photo itself is left out
    assert f"#{like_id}" in page.inner_text("#example")
    assert like_id not in card_ids(page)


def test_pages_of_results_load_with_the_more_button(page: Any, site: tuple[str, Path]) -> None:
    url, _ = site
    page.goto(f"{url}/?k=5")
    page.fill("#query", "people")
    wait_for_cards(page, 5)
    page.click("#more")
    wait_for_cards(page, 10)
    page.click("#more")
    wait_for_cards(page, 12)
    assert page.locator("#more").is_hidden()
    ids = card_ids(page)
    assert len(set(ids)) == 12


def test_a_result_opens_with_captions_similar_photos_and_the_file_and_escape_closes_it(
    page: Any, site: tuple[str, Path]
) -> None:
    url, _ = site
    page.goto(url)
    page.fill("#query", "a child playing")
    wait_for_cards(page)
    card = page.locator("#results .card").first
    photo_id = int(card.get_attribute("data-photo-id"))
    card.locator(".open").focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#detail")
    dialog.wait_for(state="visible")
    page.wait_for_selector("#detail-captions li")
    captions = page.locator("#detail-captions li").all_inner_texts()
    labels = "from this collection|suggested by the model"  # each caption says where it comes from
    assert captions and all(re.search(rf"\w+.* -?\d\.\d{{3}}({labels})$", c) for c in captions)
    page.wait_for_function("document.querySelectorAll('#detail-similar .card').length === 6")
    assert page.get_attribute("#detail-file", "href") == f"/v1/photos/{photo_id}/file"
    page.wait_for_function("document.getElementById('detail-image').naturalWidth > 0")
    assert "Collection" in page.inner_text("#detail-meta")
    original = page.request.get(url + f"/v1/photos/{photo_id}/file")
    assert original.ok and original.headers["content-type"] == "image/jpeg"

    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}])
def test_at_phone_width_the_grid_has_two_columns_and_nothing_scrolls_sideways(
    page: Any, site: tuple[str, Path]
) -> None:
    url, _ = site
    page.goto(url)
    page.fill("#query", "a dog")
    wait_for_cards(page, 12)
    lefts = page.locator("#results .card").evaluate_all("cards => cards.map(c => c.offsetLeft)")
    assert len(set(lefts)) == 2
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_server_with_nothing_indexed_says_it_is_not_ready(
    page: Any, tmp_path: Path, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOSEARCH_AUTH__REQUIRED", "false")
    settings = Settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'empty.db'}", device="cpu"
    )
    with serve(create_app(settings, encoder)) as url:
        page.goto(url)
        page.wait_for_function("document.getElementById('message').textContent.includes('not ready')")
        assert "photosearch index" in page.inner_text("#message")  # the API's own detail
        assert page.locator("#message").evaluate("m => m.classList.contains('error')")


def test_with_keys_required_the_page_asks_for_a_key_once_and_sends_it_on_every_request(
    page: Any, tmp_path: Path, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services.keys import KeyService
    from app.storage.db import make_engine, session_factory

    monkeypatch.setenv("PHOTOSEARCH_AUTH__REQUIRED", "true")
    settings = indexed_settings(tmp_path, encoder, f"sqlite:///{tmp_path / 'photosearch.db'}")
    engine = make_engine(settings.db_url)
    token = KeyService(session_factory(engine)).create("web page")
    engine.dispose()
    with serve(create_app(settings, encoder)) as url:
        page.goto(url)
        page.fill("#query", "a dog")
        page.locator("#key-dialog").wait_for(state="visible")
        page.fill("#key-input", token)
        page.keyboard.press("Enter")
        wait_for_cards(page, 12)  # the refused search was sent again with the key
        # thumbnails need the key too: each one decoded means its request carried it
        page.wait_for_function(
            "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        assert page.evaluate("localStorage.getItem('photosearch.apiKey')") == token

        page.reload()  # kept: no second prompt
        page.fill("#query", "a dog")
        wait_for_cards(page, 12)
        assert page.locator("#key-dialog").is_hidden()

        page.evaluate("localStorage.setItem('photosearch.apiKey', 'psk_not-a-key')")
        page.reload()
        page.fill("#query", "a cat")
        page.locator("#key-dialog").wait_for(state="visible")
        assert "refused" in page.inner_text("#key-reason")


def test_camera_date_range_folder_and_sort_controls_narrow_and_order_the_grid(
    page: Any, tmp_path: Path, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOSEARCH_AUTH__REQUIRED", "false")
    shots = write_library(tmp_path / "photos")
    settings = Settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'p.db'}", device="cpu"
    )
    run_index(settings, encoder, tmp_path / "photos")
    paths = photo_ids_by_path(settings)
    by_id = {paths[str(tmp_path / "photos" / s.folder / s.name)]: s for s in shots}
    with serve(create_app(settings, encoder)) as url:
        page.goto(url)
        page.fill("#query", "a dog")
        wait_for_cards(page, 12)
        page.fill("#filter-cameras", "acme")
        wait_for_cards(page, 3)
        assert {by_id[i].camera for i in card_ids(page)} == {("Acme", "Shooter 3000")}
        page.fill("#filter-cameras", "")
        page.fill("#filter-folders", "trips/alps")
        wait_for_cards(page, 4)
        page.fill("#filter-folders", "")
        page.fill("#filter-taken-after", "2021-01-06")
        page.fill("#filter-taken-before", "2021-01-08")
        wait_for_cards(page, 3)
        assert sorted(by_id[i].taken.day for i in card_ids(page)) == [6, 7, 8]
        page.select_option("#filter-sort", "newest")
        newest = ["taken 2021-01-08", "taken 2021-01-07", "taken 2021-01-06"]
        page.wait_for_function(
            "want => [...document.querySelectorAll('#results .taken')]"
            ".map((t) => t.textContent).join() == want",
            arg=",".join(newest),
        )
        assert [by_id[i].taken.day for i in card_ids(page)] == [8, 7, 6]

        page.fill("#filter-taken-after", "2021-01-09")  # after "until": the API's 422 detail is shown
        page.dispatch_event("#filter-taken-after", "change")
        # one check of the whole state: a search still running may replace the message for a moment
        page.wait_for_function(
            "() => { const m = document.getElementById('message'); return m.classList.contains('error')"
            " && m.textContent.includes('Error 422: taken_after')"
            " && m.textContent.includes('later than taken_before'); }"
        )


@pytest.fixture(scope="module")
def two_collection_site(
    tmp_path_factory: pytest.TempPathFactory, minilm_encoder: Encoder
) -> Iterator[tuple[str, dict[str, set[int]]]]:
    """A server over two collections: "family" (6 photos with their captions) and "work" (6 other photos,
    indexed without captions, as a company's library is); its URL and each collection's photo ids. The
    model's real caption bank describes the "work" photos: joint-default-v6's, as for `site`."""
    require_chromium()
    encoder = minilm_encoder
    base = tmp_path_factory.mktemp("web-collections")
    settings = Settings(
        data_dir=base / "data", database_url=f"sqlite:///{base / 'photosearch.db'}", device="cpu"
    )
    ids: dict[str, set[int]] = {}
    for name, skip, captioned in (("family", 0, True), ("work", 6, False)):
        folder = base / name
        captions = photos.copy_shared_photos(folder, "val", 6, skip=skip)
        run_index(settings, encoder, folder, captions=captions if captioned else None, collection=name)
        ids[name] = {i for path, i in photo_ids_by_path(settings).items() if path.startswith(f"{folder}/")}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PHOTOSEARCH_AUTH__REQUIRED", "false")
        app = create_app(settings, encoder)
    with serve(app) as url:
        yield url, ids


def test_the_collection_picker_narrows_text_and_image_search(
    page: Any, two_collection_site: tuple[str, dict[str, set[int]]]
) -> None:
    url, ids = two_collection_site
    page.goto(url)
    page.locator("#collection-choice").wait_for(state="visible")
    options = page.locator("#filter-collection option").all_inner_texts()
    assert options == ["All collections", "family (6)", "work (6)"]
    page.fill("#query", "a dog")
    wait_for_cards(page, 12)
    page.select_option("#filter-collection", "work")
    wait_for_cards(page, 6)
    assert set(card_ids(page)) == ids["work"]
    first_family = min(ids["family"])  # "more like this" on a family photo, while "work" is picked
    page.evaluate("id => searchLike(id)", first_family)
    wait_for_cards(page, 6)
    assert set(card_ids(page)) == ids["work"]
    page.select_option("#filter-collection", "")
    wait_for_cards(page, 11)  # every photo but the query photo itself
    assert set(card_ids(page)) == (ids["work"] | ids["family"]) - {first_family}


def test_the_detail_view_labels_where_each_caption_comes_from(
    page: Any, two_collection_site: tuple[str, dict[str, set[int]]]
) -> None:
    url, ids = two_collection_site
    page.goto(url)
    for photo_id in (min(ids["work"]), min(ids["family"])):
        page.evaluate("id => openDetail(id)", photo_id)
        page.wait_for_function("document.querySelectorAll('#detail-captions li').length === 5")
        sources = page.locator("#detail-captions li").evaluate_all(
            "items => items.map(i => i.dataset.source)"
        )
        labels = page.locator("#detail-captions li .source").all_inner_texts()
        if photo_id in ids["work"]:  # nobody captioned it: the model's bank describes it
            assert sources == ["model"] * 5 and set(labels) == {"suggested by the model"}
        else:  # its own captions come first
            assert sources == ["collection"] * 5 and set(labels) == {"from this collection"}
        page.keyboard.press("Escape")
        page.locator("#detail").wait_for(state="hidden")


def test_a_hit_that_stands_for_copies_says_how_many(
    page: Any, two_collection_site: tuple[str, dict[str, set[int]]]
) -> None:
    url, _ = two_collection_site

    def with_copies(route: Any) -> None:  # the server's answer, with copies folded into its first hit
        answer = route.fetch().json()
        answer["hits"][0]["duplicate_ids"] = [901, 902]
        answer["hits"][1]["duplicate_ids"] = [903]
        route.fulfill(json=answer)

    page.route("**/v1/search/text", with_copies)
    page.goto(url)
    page.fill("#query", "children")
    wait_for_cards(page, 12)
    copies = page.locator("#results .card .copies").all_inner_texts()
    assert copies == ["+2 copies", "+1 copy"]  # hits without the field show nothing
    assert (
        page.locator("#results .card").first.locator(".copies").get_attribute("title") == "Also: #901, #902"
    )
