"""Everything `photosearch index` is given is checked before any photo is read or embedded.

A folder that is missing or not a folder, a captions file that is missing, unreadable or has any
line that is not a captions row, and a label file that is missing or empty are each a one-line
error (a models/errors.py kind), and the run changes nothing. Bad caption lines are an error rather
than a skip: a file with a broken line is usually cut short or the wrong file, and attaching part of
it would silently replace good captions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from models.errors import InvalidInputError, NotFoundError
from models.training.data import clean_caption

MAX_LINES_NAMED = 5  # bad line numbers quoted in an error


class IndexerError(InvalidInputError):
    """An input of an indexing run that cannot be used; the run has changed nothing."""


class FolderNotFoundError(NotFoundError):
    pass


class CaptionsFileError(IndexerError):
    pass


@dataclass(frozen=True)
class CaptionRow:
    line: int
    image: str
    texts: tuple[str, ...]  # cleaned, empty ones dropped


@dataclass(frozen=True)
class CaptionsFile:
    path: Path  # resolved: names the captions' source
    rows: tuple[CaptionRow, ...]


def checked_folder(folder: Path) -> Path:
    root = folder.expanduser().resolve()
    if not root.exists():
        raise FolderNotFoundError(
            f"folder not found: {root} (if it is on a drive, is the drive mounted?); nothing was changed"
        )
    if not root.is_dir():
        raise IndexerError(f"not a folder: {root}; give the folder that holds the photos")
    try:
        str(root).encode("utf-8")
    except UnicodeEncodeError as exc:  # paths are stored as text: every photo under it would be left out
        shown = str(root).encode("utf-8", "backslashreplace").decode("utf-8")
        raise IndexerError(f"the folder name {shown} is not valid UTF-8: rename it to index it") from exc
    return root


def read_captions_file(path: Path) -> CaptionsFile:
    """Parse every line up front: {"image": "<path>", "captions": ["...", ...]} a line."""
    if not path.is_file():
        raise CaptionsFileError(f"captions file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise CaptionsFileError(f"cannot read captions file {path}: {exc.strerror or exc}") from exc
    rows: list[CaptionRow] = []
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(_caption_row(number, line))
        except (ValueError, KeyError, TypeError) as exc:
            bad.append((number, str(exc)))
    if bad:
        numbers = ", ".join(str(n) for n, _ in bad[:MAX_LINES_NAMED]) + (
            " …" if len(bad) > MAX_LINES_NAMED else ""
        )
        raise CaptionsFileError(
            f"captions file {path}: {len(bad)} line(s) are not "
            f'{{"image": "<path>", "captions": ["...", ...]}} rows: line {numbers} '
            f"(line {bad[0][0]}: {bad[0][1]}); nothing was changed"
        )
    if not rows:
        raise CaptionsFileError(f"captions file {path} has no rows")
    return CaptionsFile(path.resolve(), tuple(rows))


def _caption_row(number: int, line: str) -> CaptionRow:
    row = json.loads(line)
    if not isinstance(row, dict):
        raise TypeError("not a JSON object")
    image, captions = row["image"], row["captions"]
    if not isinstance(image, str) or not image:
        raise TypeError('"image" must be a non-empty path')
    if not isinstance(captions, list) or not all(isinstance(t, str) for t in captions):
        raise TypeError('"captions" must be a list of strings')
    return CaptionRow(number, image, tuple(t for t in map(clean_caption, captions) if t))
