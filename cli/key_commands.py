"""`photosearch keys create|list|revoke`: the API keys a server with auth on accepts."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import console
from models.errors import InvalidInputError

if TYPE_CHECKING:
    from app.core.config import Settings
    from app.services.keys import KeyService

HOW_TO_CREATE = "create one with `photosearch keys create NAME --collections a,b` (or --all, --admin)"

keys_app = typer.Typer(
    help="API keys: create (the token is printed once), list, revoke.", no_args_is_help=True
)


def _key_service(settings: Settings | None = None) -> KeyService:
    from app.services.keys import KeyService
    from cli.context import open_sessions
    from cli.options import current_settings

    return KeyService(open_sessions(settings or current_settings()))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_access_before_serving(settings: Settings, host: str) -> None:
    """Auth may be off only on a loopback address; with auth on, at least one key must exist."""
    if not settings.auth.required:
        if not is_loopback(host):
            raise InvalidInputError(
                f"auth is off (PHOTOSEARCH_AUTH__REQUIRED=false) and --host {host} is not a loopback "
                f"address: turn auth on and {HOW_TO_CREATE}, or bind to 127.0.0.1"
            )
        console.print(f"auth is off: the API at {host} is open to this machine only", highlight=False)
        return
    if not _key_service(settings).count():
        raise InvalidInputError(f"auth is on but no API key exists: {HOW_TO_CREATE}")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what the key is for (unique).")],
    collections: Annotated[
        str | None, typer.Option(help="Comma-separated collections the key may see.")
    ] = None,
    all_collections: Annotated[
        bool, typer.Option("--all", help="Every collection, present and future.")
    ] = False,
    admin: Annotated[
        bool, typer.Option("--admin", help="Every collection, server paths and hashes, and /metrics.")
    ] = False,
) -> None:
    """Create a key and print its token, alone on stdout: it is shown this once (only a hash is kept)."""
    chosen = [collections is not None, all_collections, admin]
    if sum(chosen) != 1:
        raise InvalidInputError("give exactly one of --collections a,b, --all or --admin")
    names = None if collections is None else [n.strip() for n in collections.split(",") if n.strip()]
    token = _key_service().create(name, collections=names, admin=admin)
    typer.echo(token)


@keys_app.command("list")
def list_keys() -> None:
    """Every key: name, scope, when created and last used (never the token)."""
    from rich.table import Table

    rows = _key_service().list()
    if not rows:
        console.print("no keys yet: `photosearch keys create NAME --collections a,b` (or --all, --admin)")
        return
    table = Table("name", "scope", "created", "last used")
    for row in rows:
        scope = (
            "admin" if row.admin else "all" if row.collection_ids is None else ",".join(row.collection_names)
        )
        used = "never" if row.last_used_at is None else f"{row.last_used_at:%Y-%m-%d %H:%M}"
        table.add_row(row.name, scope or "(collections deleted)", f"{row.created_at:%Y-%m-%d %H:%M}", used)
    console.print(table)


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Delete a key: every server refuses it from its next request on (within auth.cache_seconds if set)."""
    _key_service().revoke(name)
    console.print(f"revoked {name}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
