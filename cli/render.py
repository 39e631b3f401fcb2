"""Terminal output for the CLI."""

from __future__ import annotations

import typer
from rich.color import Color
from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text

from app.services.access import OPEN_SCOPE
from app.services.filters import Page
from app.services.search import PhotoHit
from indexer.pipeline import IndexReport

THUMBNAIL_COLUMNS = 16  # characters wide; rows follow the photo's shape (2 pixels a character)


def print_hits(console: Console, query: str, hits: list[PhotoHit], thumbnails: bool = False) -> None:
    """One row a hit, best first; `rank` is what the hits are ordered by when that is not the cosine
    `score` (query-bank normalisation, or a re-ranker's relevance)."""
    table = Table(title=f"“{query}”", show_lines=thumbnails)
    ranked = any(h.rank_score is not None or h.rerank_score is not None for h in hits)
    columns = ["#", *(["photo"] if thumbnails else []), "score", *(["rank"] if ranked else [])]
    for column in (*columns, "id", "path", "caption"):
        table.add_column(column, overflow="fold", no_wrap=column == "photo")
    for position, hit in enumerate(hits, start=1):
        caption = hit.photo.captions[0].text if hit.photo.captions else ""
        order = hit.rerank_score if hit.rerank_score is not None else hit.rank_score
        rank = [f"{order:.3f}" if order is not None else ""] if ranked else []
        picture = [half_block_thumbnail(hit.photo.path)] if thumbnails else []
        photo_id = f"{hit.photo.id}{duplicates_note(hit.duplicate_ids)}"
        table.add_row(str(position), *picture, f"{hit.score:.3f}", *rank, photo_id, hit.photo.path, caption)
    console.print(table)


def duplicates_note(ids: list[int]) -> str:
    """ " (+2 duplicates: 18, 19)" after a hit that stands for near-identical photos; "" for none."""
    if not ids:
        return ""
    return f" (+{len(ids)} duplicate{'s' if len(ids) > 1 else ''}: {', '.join(map(str, ids))})"


def half_block_thumbnail(path: str, columns: int = THUMBNAIL_COLUMNS) -> Text:
    """A photo in coloured text: each "▀" is two pixels, the upper one its colour and the lower one its
    background, which any true-colour terminal shows without an image protocol; empty when the file
    cannot be read now (moved or deleted since it was indexed)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.draft("RGB", (columns * 8, columns * 8))  # a JPEG decodes at a fraction of its size
            small = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return Text("")
    small.thumbnail((columns, columns * 2))
    width, height = small.size
    rgb = small.tobytes()  # 3 bytes a pixel, row after row

    def colour(x: int, y: int) -> Color:
        at = 3 * (y * width + x)
        return Color.from_rgb(rgb[at], rgb[at + 1], rgb[at + 2])

    text = Text()
    for y in range(0, height - 1, 2):
        for x in range(width):
            text.append("▀", Style(color=colour(x, y), bgcolor=colour(x, y + 1)))
        text.append("\n")
    text.rstrip()
    return text


def print_index_report(console: Console, report: IndexReport) -> None:
    r = report.reconcile
    table = Table()
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("photo files found", report.scanned),
        ("new", r.new),
        ("changed", r.changed),
        ("unchanged", r.unchanged + r.touched),
        ("renamed (vector kept)", r.renamed),
        ("removed (file gone)", r.deleted),
        ("embedded now", report.embedded),
        ("skipped", len(report.skipped)),
        ("caption vectors added", report.caption_vectors),
    ]
    if report.captions:
        rows.append(("photos given captions", report.captions.photos))
        rows.append(("captions new or changed", report.captions.added))
        rows.append(("captions no longer in the file", report.captions.removed))
    if report.labels:
        rows.append(("photos tagged now", report.labels.photos_tagged))
    if report.photo_index:
        rows.append((f"photo index ({report.photo_index[0]})", report.photo_index[1]))
    if report.caption_index:
        rows.append((f"caption index ({report.caption_index[0]})", report.caption_index[1]))
    for name, count in rows:
        table.add_row(name, str(count))
    console.print(table)
    # A line of its own: as the table's title it wrapped to the narrow table's width.
    console.print(f"indexed collection “{report.collection}” in {report.seconds:.1f} s")
    for path, reason in report.skipped[:20]:
        console.print(f"[yellow]skipped[/yellow] {path}: {reason}")
    if len(report.skipped) > 20:
        console.print(f"… and {len(report.skipped) - 20} more skipped (see the log above)")


def print_hits_json(model: str, page: Page, hits: list[PhotoHit]) -> None:
    """The hits as the API's SearchResponse, built by the API's own code, so one script reads either;
    paths are absolute, as the API shows them to an admin (the terminal's user reads the database and
    the folders directly)."""
    from app.api.routes.search import search_response

    typer.echo(search_response(model, page, hits, OPEN_SCOPE).model_dump_json(indent=2))
