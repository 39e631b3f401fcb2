"""Captions from a JSONL file: attached, embedded once, and diffed by text when the file comes again."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.core.config import Settings
from app.storage.tables import Caption, CaptionEmbedding
from models.encoder import Encoder
from tests.builders.indexing import run_index, served_ids, table


def _caption_vectors(settings: Settings) -> dict[int, bytes]:
    return {row.caption_id: row.vector for row in table(settings, CaptionEmbedding)}


def test_captions_are_attached_and_embedded(settings: Settings, encoder: Encoder, photo_folder: Path) -> None:
    report = run_index(settings, encoder, photo_folder, captions=photo_folder / "captions.jsonl")
    assert report.captions is not None and (report.captions.photos, report.captions.captions) == (12, 60)
    assert report.caption_index == ("flat", 60) and report.caption_vectors == 60
    captions = table(settings, Caption)
    assert len(captions) == 60 and not captions[0].text.endswith(" .")
    assert served_ids(settings, encoder, "captions") == {c.id for c in captions}


def test_same_file_again_keeps_caption_ids_and_embeds_nothing(
    settings: Settings, encoder: Encoder, photo_folder: Path
) -> None:
    captions_file = photo_folder / "captions.jsonl"
    run_index(settings, encoder, photo_folder, captions=captions_file)
    ids, vectors = {c.id for c in table(settings, Caption)}, _caption_vectors(settings)

    again = run_index(settings, encoder, photo_folder, captions=captions_file)
    assert again.captions is not None and (again.captions.added, again.captions.removed) == (0, 0)
    assert again.caption_vectors == 0
    assert {c.id for c in table(settings, Caption)} == ids and _caption_vectors(settings) == vectors


def test_a_changed_caption_line_embeds_only_its_changed_captions(
    settings: Settings, encoder: Encoder, photo_folder: Path
) -> None:
    captions_file = photo_folder / "captions.jsonl"
    run_index(settings, encoder, photo_folder, captions=captions_file)
    before = {c.id: c.text for c in table(settings, Caption)}
    vectors = _caption_vectors(settings)

    rows = [json.loads(line) for line in captions_file.read_text().splitlines()]
    replaced = rows[3]["captions"][1]
    rows[3]["captions"][1] = "a completely new caption for this photo"
    captions_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = run_index(settings, encoder, photo_folder, captions=captions_file)

    assert report.captions is not None and (report.captions.added, report.captions.removed) == (1, 1)
    assert report.caption_vectors == 1
    after = {c.id: c.text for c in table(settings, Caption)}
    assert len(after) == 60
    kept = {cid for cid, text in before.items() if cid in after}
    assert len(kept) == 59 and replaced.removesuffix(" .") not in {after[cid] for cid in kept}
    new_vectors = _caption_vectors(settings)
    assert all(new_vectors[cid] == vectors[cid] for cid in kept)  # unchanged captions keep their vectors
    assert served_ids(settings, encoder, "captions") == set(after)


@pytest.mark.slow
def test_the_cli_report_says_what_changed_in_the_captions(cli_env: str, photo_folder: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    args = ["index", str(photo_folder), "--captions", str(photo_folder / "captions.jsonl")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert re.search(r"captions new or changed\s*│\s*60\s*│", first.output)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert re.search(r"captions new or changed\s*│\s*0\s*│", again.output)
    assert re.search(r"caption vectors added\s*│\s*0\s*│", again.output)
