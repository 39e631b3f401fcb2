"""The installed `photosearch` script in a subprocess: every error one line and exit code 2, and a
quiet stderr when all goes well."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.builders import photos
from tests.builders.console import nonempty_lines, run_photosearch, script_env

pytestmark = pytest.mark.slow  # each case starts the installed script in a new process (seconds)

UNREACHABLE_DB = "postgresql+psycopg://nobody:secret-pw@127.0.0.1:1/x"

# name → (tmp folder → (arguments, PHOTOSEARCH_ settings, fragments the error line must contain))
ErrorCase = Callable[[Path], tuple[list[str], dict[str, str], list[str]]]


def _bad_captions(tmp: Path) -> tuple[list[str], dict[str, str], list[str]]:
    photos.copy_shared_photos(tmp / "photos", "val", 1)
    (tmp / "captions.jsonl").write_text('{"image": "a.jpg", "captions": ["a dog"]}\nnot json\n')
    return ["index", str(tmp / "photos"), "--captions", str(tmp / "captions.jsonl")], {}, ["captions.jsonl"]


def _missing_labels(tmp: Path) -> tuple[list[str], dict[str, str], list[str]]:
    photos.copy_shared_photos(tmp / "photos", "val", 1)
    return ["index", str(tmp / "photos"), "--labels", str(tmp / "labels.txt")], {}, [str(tmp / "labels.txt")]


def _tag_unknown_collection(tmp: Path) -> tuple[list[str], dict[str, str], list[str]]:
    (tmp / "labels.txt").write_text("dog\nbeach\n")
    return ["tag", str(tmp / "labels.txt"), "--collection", "holidays"], {}, ["no collection 'holidays'"]


def _samples_under_a_file(tmp: Path) -> tuple[list[str], dict[str, str], list[str]]:
    (tmp / "a-file").write_text("")
    return ["samples", str(tmp / "a-file" / "samples")], {}, [str(tmp / "a-file" / "samples")]


def _data_dir_under_a_file(tmp: Path) -> tuple[list[str], dict[str, str], list[str]]:
    (tmp / "a-file").write_text("")
    folder = tmp / "a-file" / "data"
    return ["query", "a dog"], {"data_dir": str(folder)}, [str(folder), "PHOTOSEARCH_DATA_DIR"]


ERROR_CASES: dict[str, ErrorCase] = {
    "model name typo lists the models": lambda tmp: (
        ["query", "a dog", "--model", "joint-defualt"],
        {},
        ["joint-defualt", "joint-default", "clip-vit-b-32"],
    ),
    "missing weights file": lambda tmp: (
        ["query", "a dog"],
        {"checkpoint": str(tmp / "gone.safetensors")},
        [str(tmp / "gone.safetensors")],
    ),
    "unreachable database, password hidden": lambda tmp: (
        ["query", "a dog"],
        {"database_url": UNREACHABLE_DB},
        ["cannot reach the database at postgresql+psycopg://nobody:***@127.0.0.1:1/x", "DATABASE_URL"],
    ),
    "uncreatable data folder": _data_dir_under_a_file,
    "serve with an unreachable database": lambda tmp: (
        ["serve", "--port", "1"],
        {"database_url": UNREACHABLE_DB},
        ["cannot reach the database at postgresql+psycopg://nobody:***@127.0.0.1:1/x"],
    ),
    "serve with a model name typo": lambda tmp: (["serve"], {"model": "joint-defualt"}, ["joint-default"]),
    "setting that does not parse": lambda tmp: (
        ["query", "a dog"],
        {"indexer__workers": "two"},
        ["PHOTOSEARCH_INDEXER__WORKERS"],
    ),
    "unknown device": lambda tmp: (["query", "a dog"], {"device": "cdua"}, ["'cdua'", "cpu"]),
    "missing photo folder": lambda tmp: (["index", str(tmp / "nope")], {}, [str(tmp / "nope")]),
    "captions file that is not JSON lines": _bad_captions,
    "missing labels file": _missing_labels,
    "classify a missing photo": lambda tmp: (
        ["classify", str(tmp / "gone.jpg"), "--label", "dog"],
        {},
        [str(tmp / "gone.jpg")],
    ),
    "tag an unknown collection": _tag_unknown_collection,
    "calibrate a missing checkpoint": lambda tmp: (
        ["calibrate", str(tmp / "gone.safetensors")],
        {},
        [str(tmp / "gone.safetensors")],
    ),
    "samples into a file": _samples_under_a_file,
}
# These fail only once the model has loaded (seconds more each).
AFTER_LOADING_CASES: dict[str, ErrorCase] = {
    "empty query": lambda tmp: (["query", "   "], {}, ["query is empty"]),
    "nothing indexed yet": lambda tmp: (["query", "a dog"], {}, ["photosearch index"]),
}


def assert_one_error_line(stderr: str, stdout: str, fragments: list[str]) -> str:
    lines = nonempty_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr + stdout and "error:" not in stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    "case",
    [*ERROR_CASES, *(pytest.param(name, marks=pytest.mark.slow) for name in AFTER_LOADING_CASES)],
)
def test_each_error_is_one_line_and_exit_code_2(case: str, tmp_path: Path) -> None:
    args, settings, fragments = (ERROR_CASES | AFTER_LOADING_CASES)[case](tmp_path)
    result = run_photosearch(args, script_env(tmp_path / "data", **settings))
    assert result.returncode == 2, result.stderr
    line = assert_one_error_line(result.stderr, result.stdout, fragments)
    assert "secret-pw" not in line


@contextmanager
def read_only_folder(parent: Path) -> Iterator[Path]:
    """A folder this process cannot create anything in: mode 0555, or when running as root (who
    ignores modes) marked immutable with chattr."""
    folder = parent / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    as_root = os.geteuid() == 0
    if as_root and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root where chattr +i is not possible: no folder root cannot write")
    try:
        yield folder
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_read_only_data_folder_is_named_with_its_setting(tmp_path: Path) -> None:
    with read_only_folder(tmp_path) as folder:
        result = run_photosearch(["query", "a dog"], script_env(folder / "data"))
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr, result.stdout, [str(folder / "data"), "PHOTOSEARCH_DATA_DIR"])


def test_usage_errors_stay_typers(tmp_path: Path) -> None:
    result = run_photosearch(["index"], script_env(tmp_path / "data"))
    assert result.returncode == 2 and "Missing argument" in result.stderr and "Traceback" not in result.stderr


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run_photosearch(["--version"], script_env(tmp_path / "data"))
    assert result.returncode == 0 and result.stdout.strip() == f"photosearch {version('photosearch')}"


# "Loading faiss": the FAISS loader naming the CPU instruction set it picked (AVX512, AVX2 or none)
STARTUP_NOISE = ("Loading faiss", "Context impl", "Will assume", "Loading weights", "ModuleNotFoundError")


@pytest.mark.slow
def test_index_and_query_print_no_library_noise_unless_verbose(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    photos.copy_shared_photos(folder, "val", 2)
    env = script_env(tmp_path / "data")
    indexed = run_photosearch(["index", str(folder)], env)
    found = run_photosearch(["query", "a dog", "-k", "2"], env)
    for result in (indexed, found):
        assert result.returncode == 0, result.stderr
        assert not [noise for noise in STARTUP_NOISE if noise in result.stderr], result.stderr
    assert "embedded now" in indexed.stdout and found.stdout.count(str(folder)) == 2
    assert re.search(r"^indexed collection “default” in \d+\.\d s$", indexed.stdout, re.MULTILINE)
    verbose = run_photosearch(["--verbose", "query", "a dog", "-k", "2"], env)
    assert verbose.returncode == 0, verbose.stderr
    for detail in ("DEBUG", "Loading faiss", "Context impl", "Loading weights"):
        assert detail in verbose.stderr, detail
