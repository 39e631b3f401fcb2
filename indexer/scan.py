"""Walk a photo folder: which files are photos, their size and mtime, and what was left out and why.

Every file or folder left out is logged with its reason as it is met (and file ones reported):
hidden ones (unless `include_hidden`), NAS metadata folders, a symlink leading out of the scanned
folder (unless `follow_symlinks_outside`), a dangling link, a symlink loop, something that is not a
regular file (a FIFO, a socket, a device), and a name that is not valid UTF-8 (the database stores
text paths). A symlinked sub-folder inside the scanned folder is followed once: a folder reached
twice is not walked again, so links cannot loop.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat as stat_kinds
from dataclasses import dataclass, field
from pathlib import Path

from models.images import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

SKIP_DIRS = frozenset({"@eaDir", "node_modules", "__pycache__", "#recycle", "$RECYCLE.BIN"})
HIDDEN = "hidden (indexer.include_hidden=false)"
METADATA_FOLDER = "a system or NAS metadata folder"


@dataclass(frozen=True)
class ScannedFile:
    path: str  # absolute, as found (a symlink keeps its own path)
    folder: str  # relative to the collection folder holding it (the scanned root or a parent), "" at the top
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanRules:
    include_hidden: bool = False
    follow_symlinks_outside: bool = False


@dataclass
class ScanResult:
    files: list[ScannedFile] = field(default_factory=list)
    unreadable_dirs: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    unreadable_files: list[tuple[str, str]] = field(default_factory=list)  # left out, with the reason
    unsure: set[str] = field(default_factory=set)  # files that may still be there: their rows are kept

    def is_under_unreadable(self, path: str) -> bool:
        return path in self.unsure or any(_is_under(path, d) for d, _ in self.unreadable_dirs)


def scan_folder(root: Path, base: Path | None = None, rules: ScanRules | None = None) -> ScanResult:
    """Recursive. Folders are named relative to `base` (the collection folder holding `root`;
    `root` itself by default)."""
    walker = _Walker(root.resolve(), (base or root).resolve(), rules or ScanRules())
    walker.walk(str(walker.root))
    return walker.result


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _looks_like_photo(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _text_name(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode's surrogate escapes for bytes that are not UTF-8
        return False
    return True


class _Walker:
    def __init__(self, root: Path, base: Path, rules: ScanRules) -> None:
        self.root, self.base, self.rules = root, base, rules
        self.result = ScanResult()
        self.visited: set[tuple[int, int]] = set()  # (device, inode) of folders walked

    def walk(self, folder: str) -> None:
        try:
            info = os.stat(folder)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            self._unreadable_dir(folder, exc.strerror or str(exc))
            return
        if (info.st_dev, info.st_ino) in self.visited:
            log.warning(
                "not walked again: %s (a symlink loop or a second link to a folder already walked)", folder
            )
            return
        self.visited.add((info.st_dev, info.st_ino))
        for entry in entries:
            self._visit(entry)

    def _visit(self, entry: os.DirEntry[str]) -> None:
        if entry.is_symlink() and not os.path.exists(entry.path):
            broken = self._broken_link(entry)
            if broken != "a symlink loop":
                self.result.unsure.add(entry.path)  # a link into a drive not mounted now, maybe
            self._left_out(entry.path, broken)
            return
        is_dir = entry.is_dir()  # follows links
        if not is_dir and not _looks_like_photo(entry.name):
            return  # not a photo file: nothing to index or report
        reason = self._reason_to_leave_out(entry, is_dir)
        if reason is not None:
            self._left_out(entry.path, reason)
            return
        if is_dir:
            self.walk(entry.path)
            return
        try:
            info = os.stat(entry.path)  # the target's kind and size
        except OSError as exc:
            self.result.unsure.add(entry.path)
            self._left_out(entry.path, f"cannot read: {exc.strerror or exc}")
            return
        if not stat_kinds.S_ISREG(info.st_mode):
            self._left_out(entry.path, "not a regular file (a FIFO, socket or device)")
            return
        folder = os.path.relpath(os.path.dirname(entry.path), self.base)
        self.result.files.append(
            ScannedFile(entry.path, "" if folder == "." else folder, info.st_size, info.st_mtime_ns)
        )

    def _reason_to_leave_out(self, entry: os.DirEntry[str], is_dir: bool) -> str | None:
        if not _text_name(entry.path):
            return "the name is not valid UTF-8: rename it to index it"
        if entry.name.startswith(".") and not self.rules.include_hidden:
            return HIDDEN
        if is_dir and entry.name in SKIP_DIRS:
            return METADATA_FOLDER
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if not _is_under(target, str(self.root)) and not self.rules.follow_symlinks_outside:
                return f"a symlink to {target}, outside the scanned folder (indexer.follow_symlinks_outside)"
        return None

    def _broken_link(self, entry: os.DirEntry[str]) -> str:
        try:
            os.stat(entry.path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "a symlink loop"
        return f"a dangling symlink (to {os.readlink(entry.path)})"

    def _left_out(self, path: str, reason: str) -> None:
        shown = path.encode("utf-8", "backslashreplace").decode("utf-8")
        expected = reason in (HIDDEN, METADATA_FOLDER)  # left out by design: said, not warned
        log.log(logging.INFO if expected else logging.WARNING, "left out %s: %s", shown, reason)
        self.result.unreadable_files.append((shown, reason))

    def _unreadable_dir(self, folder: str, reason: str) -> None:
        self.result.unreadable_dirs.append((folder, reason))
        log.warning("cannot read folder %s: %s (its photos are kept as they were)", folder, reason)
