"""Public-domain sample photos that ship inside scikit-image, for a first run without your own."""

from __future__ import annotations

import shutil
from pathlib import Path

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
        raise RuntimeError(
            "sample photos come with scikit-image: pip install 'photosearch[samples]'"
        ) from exc
    source = Path(skimage.__file__).parent / "data"
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in SAMPLES:
        if (source / name).is_file():
            target = dest / name
            if not target.exists():
                shutil.copy2(source / name, target)
            copied.append(target)
    if not copied:
        raise RuntimeError(f"no sample photos found under {source}")
    return copied
