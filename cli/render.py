"""Terminal output for the CLI."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from app.services.access import OPEN_SCOPE
from app.services.filters import Page
from app.services.search import PhotoHit
from indexer.pipeline import IndexReport


def print_hits(console: Console, query: str, hits: list[PhotoHit]) -> None:
    """One row a hit, best first; `rank` is what the hits are ordered by when that is not the cosine
    `score` (query-bank normalisation, or a re-ranker's relevance)."""
    table = Table(title=f"“{query}”", show_lines=False)
    ranked = any(h.rank_score is not None or h.rerank_score is not None for h in hits)
    for column in ("#", "score", *(["rank"] if ranked else []), "id", "path", "caption"):
        table.add_column(column, overflow="fold")
    for position, hit in enumerate(hits, start=1):
        caption = hit.photo.captions[0].text if hit.photo.captions else ""
        order = hit.rerank_score if hit.rerank_score is not None else hit.rank_score
        rank = [f"{order:.3f}" if order is not None else ""] if ranked else []
        table.add_row(str(position), f"{hit.score:.3f}", *rank, str(hit.photo.id), hit.photo.path, caption)
    console.print(table)


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
