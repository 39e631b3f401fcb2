"""Public-domain sample photos that ship inside scikit-image, for a first run without your own."""

from __future__ import annotations

import shutil
from pathlib import Path

from models.errors import InvalidInputError, NotFoundError

SAMPLES = (
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "rocket.jpg",
    "motorcycle_left.png",
    "retina.jpg",
    "moon.png",
    "grass.png",
    "gravel.png",
    "brick.png",
    "coins.png",
    "page.png",
    "ihc.png",
    "immunohistochemistry.png",
    "cell.png",
    "text.png",
)


def copy_samples(dest: Path) -> list[Path]:
    try:
        import skimage
    except ImportError as exc:
        raise NotFoundError(
            "sample photos come with scikit-image: pip install 'photosearch[samples]'"
        ) from exc
    source = Path(skimage.__file__).parent / "data"
    found = [source / name for name in SAMPLES if (source / name).is_file()]
    if not found:
        raise NotFoundError(f"no sample photos found under {source}; reinstall scikit-image")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for photo in found:
            if not (dest / photo.name).exists():
                shutil.copy2(photo, dest / photo.name)
    except OSError as exc:
        raise InvalidInputError(f"cannot copy sample photos into {dest}: {exc.strerror or exc}") from exc
    return [dest / photo.name for photo in found]
