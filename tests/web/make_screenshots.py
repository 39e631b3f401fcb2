"""Retake the README's screenshots of the search page (docs/screenshots/*.png) in headless Chromium:
`python -m tests.web.make_screenshots`. Two collections of real Flickr8k val photos, one with its
captions and one without, so the pictures show the collection picker and captions from both sources."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from app.core.config import Settings
from app.main import create_app
from models.registry import create_encoder
from tests.builders import photos
from tests.builders.browser import chromium, serve
from tests.builders.indexing import photo_ids_by_path, run_index

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
QUERY = "a dog running on the grass"


def library(base: Path) -> tuple[Settings, int]:
    """family: 12 photos with their captions; work: 12 more without. → settings, a work photo's id."""
    settings = Settings(data_dir=base / "data", database_url=f"sqlite:///{base / 'p.db'}", device="cpu")
    encoder = create_encoder("joint-default", device="cpu")
    for name, skip, captioned in (("family", 0, True), ("work", 12, False)):
        captions = photos.copy_shared_photos(base / name, "val", 12, skip=skip)
        run_index(settings, encoder, base / name, captions=captions if captioned else None, collection=name)
    work = min(i for path, i in photo_ids_by_path(settings).items() if "/work/" in path)
    return settings, work


def take(url: str, work_photo: int) -> None:
    with chromium() as browser:
        desktop = browser.new_page(viewport={"width": 1280, "height": 860})
        desktop.goto(url)
        desktop.locator("#collection-choice").wait_for(state="visible")
        desktop.fill("#query", QUERY)
        desktop.wait_for_function("document.querySelectorAll('#results .card img[src]').length >= 12")
        desktop.screenshot(path=str(OUT / "search-desktop.png"))
        desktop.evaluate("id => openDetail(id)", work_photo)
        # the model's caption bank is embedded on its first use in this fresh data dir: minutes on a CPU
        captions = "document.querySelectorAll('#detail-captions .source').length === 5"
        desktop.wait_for_function(captions, timeout=900_000)
        desktop.wait_for_function("document.querySelectorAll('#detail-similar img[src]').length === 6")
        desktop.screenshot(path=str(OUT / "detail-desktop.png"))
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(url)
        phone.fill("#query", QUERY)
        phone.wait_for_function("document.querySelectorAll('#results .card img[src]').length >= 4")
        phone.screenshot(path=str(OUT / "search-phone.png"))


def main() -> None:
    os.environ["PHOTOSEARCH_AUTH__REQUIRED"] = "false"  # a loopback server for the pictures
    with tempfile.TemporaryDirectory() as tmp:
        settings, work_photo = library(Path(tmp))
        with serve(create_app(settings)) as url:
            take(url, work_photo)
    print(f"screenshots written to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
