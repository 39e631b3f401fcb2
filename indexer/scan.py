"""Walk a photo folder: which files are photos, their size and mtime, and what could not be read."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from models.images import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

SKIP_DIRS = frozenset({"@eaDir", "node_modules", "__pycache__", "#recycle", "$RECYCLE.BIN"})


@dataclass(frozen=True)
class ScannedFile:
    path: str  # absolute
    folder: str  # relative to the collection folder holding it (the scanned root or a parent), "" at the top
    size: int
    mtime_ns: int


@dataclass
class ScanResult:
    files: list[ScannedFile] = field(default_factory=list)
    unreadable_dirs: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    unreadable_files: list[tuple[str, str]] = field(default_factory=list)

    def is_under_unreadable(self, path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d, _ in self.unreadable_dirs)


def scan_folder(root: Path, base: Path | None = None) -> ScanResult:
    """Recursive; hidden files and folders and NAS metadata folders are left out. Folders are named
    relative to `base` (the collection folder holding `root`; `root` itself by default)."""
    root = root.resolve()
    base = root if base is None else base
    result = ScanResult()

    def on_error(error: OSError) -> None:
        where = str(error.filename or root)
        reason = error.strerror or str(error)
        result.unreadable_dirs.append((where, reason))
        log.warning("cannot read folder %s: %s (its photos are kept as they were)", where, reason)

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        folder = os.path.relpath(dirpath, base)
        folder = "" if folder == "." else folder
        for name in sorted(filenames):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            path = os.path.join(dirpath, name)
            try:
                stat = os.stat(path)
            except OSError as exc:
                result.unreadable_files.append((path, exc.strerror or str(exc)))
                continue
            if not os.path.isfile(path):
                continue
            result.files.append(ScannedFile(path, folder, stat.st_size, stat.st_mtime_ns))
    return result


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
