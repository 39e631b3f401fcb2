"""A photo library full of near-identical copies: the setting for duplicate collapsing in search."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from tests.builders.photos import SHARED, shared_rows

DOG = 29  # val photo: "A brown dog is sitting in some long grass ."
OTHER_DOGS = (17, 41, 14, 28)  # two more dogs in grass, two dogs in water: alike, but different photos
PAGED = (0, 1, 3, 5, 6, 7, 9, 12)  # people and places, each with two copies
DOG_QUERY = "a brown dog sitting in the long grass"


def byte_copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)


def mirrored(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        ImageOps.mirror(image.convert("RGB")).save(target, "JPEG", quality=92)


def reencoded(source: Path, target: Path) -> None:
    """Re-encoded as JPEG quality 85, as a photo app or a messenger would."""
    with Image.open(source) as image:
        image.convert("RGB").save(target, "JPEG", quality=85)


def burst(source: Path, target: Path) -> None:
    """The next frame of a burst: framing moved by 4% of each side, 8% brighter."""
    with Image.open(source) as image:
        rgb = image.convert("RGB")
    dx, dy = round(0.04 * rgb.width), round(0.04 * rgb.height)
    framed = rgb.crop((dx, dy, rgb.width, rgb.height))
    ImageEnhance.Brightness(framed).enhance(1.08).save(target, "JPEG", quality=92)


@dataclass
class DuplicateLibrary:
    family: Path  # collection "family": the dog, its copies, other dogs, and paged photos with copies
    work: Path  # collection "work": two more copies of the dog
    dog: list[Path] = field(default_factory=list)  # the original first, then its copies in family
    dog_elsewhere: list[Path] = field(default_factory=list)  # copies of the dog in work
    other_dogs: list[Path] = field(default_factory=list)
    paged: list[list[Path]] = field(default_factory=list)  # each: an original, then its two copies

    @property
    def copies_folder(self) -> str:
        return "copies"  # in family: every copy, none of the originals


def source(index: int) -> Path:
    row = shared_rows("val", index + 1)[index]
    return SHARED / row["image"]


def write_duplicate_library(base: Path) -> DuplicateLibrary:
    """family/originals: the dog, 4 other dogs, 8 paged photos; family/copies: the dog's byte copy,
    mirrored, re-encoded and burst copies and two copies (mirrored, re-encoded) of each paged photo;
    work: a byte copy and a mirrored copy of the dog."""
    library = DuplicateLibrary(base / "family", base / "work")
    originals, copies = library.family / "originals", library.family / library.copies_folder
    for folder in (originals, copies, library.work):
        folder.mkdir(parents=True)
    dog = originals / "dog.jpg"
    shutil.copyfile(source(DOG), dog)
    library.dog.append(dog)
    for make in (byte_copy, mirrored, reencoded, burst):
        library.dog.append(copies / f"dog-{make.__name__}.jpg")
        make(dog, library.dog[-1])
    for make in (byte_copy, mirrored):
        library.dog_elsewhere.append(library.work / f"dog-{make.__name__}.jpg")
        make(dog, library.dog_elsewhere[-1])
    for index in OTHER_DOGS:
        library.other_dogs.append(originals / f"other-dog-{index}.jpg")
        shutil.copyfile(source(index), library.other_dogs[-1])
    for index in PAGED:
        original = originals / f"photo-{index}.jpg"
        shutil.copyfile(source(index), original)
        group = [original]
        for make in (mirrored, reencoded):
            group.append(copies / f"photo-{index}-{make.__name__}.jpg")
            make(original, group[-1])
        library.paged.append(group)
    return library
