"""`photosearch keys` and the access checks of `photosearch serve`, on both databases."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.core.config import Settings, get_settings
from app.storage.db import make_engine, session_factory, transaction
from app.storage.repository import get_or_create_collection
from app.storage.tables import ApiKey
from cli.context import open_database
from cli.key_commands import check_access_before_serving
from cli.main import app
from tests.builders.console import run_photosearch, script_env

runner = CliRunner()


def add_collections(settings: Settings, *names: str) -> None:
    engine = open_database(settings)
    with transaction(session_factory(engine)) as session:
        for name in names:
            get_or_create_collection(session, name=name, root=settings.data_dir / name)
    engine.dispose()


def stored_keys(settings: Settings) -> list[ApiKey]:
    engine = make_engine(settings.db_url)
    with session_factory(engine)() as session:
        rows = list(session.query(ApiKey))
    engine.dispose()
    return rows


def test_create_list_revoke(cli_env: str) -> None:
    settings = get_settings()
    add_collections(settings, "family", "work")
    created = runner.invoke(app, ["keys", "create", "alice", "--collections", "family,work"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert created.stdout == token + "\n" and len(token) > 40
    [row] = stored_keys(settings)
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr([getattr(row, c.name) for c in ApiKey.__table__.columns])
    assert runner.invoke(app, ["keys", "create", "ops", "--admin"]).exit_code == 0
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0 and token not in listed.output
    assert "alice" in listed.output and "family,work" in listed.output and "never" in listed.output
    assert "admin" in listed.output
    assert runner.invoke(app, ["keys", "revoke", "alice"]).exit_code == 0
    assert [r.name for r in stored_keys(settings)] == ["ops"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "bob", "--collections", "family,nope"], "no collection named nope"),
        (["create", "bob"], "exactly one of --collections"),
        (["create", "bob", "--all", "--admin"], "exactly one of --collections"),
        (["create", "bob", "--collections", " , "], "at least one collection"),
        (["create", "taken", "--all"], "a key named 'taken' exists"),
        (["revoke", "nobody"], "no key named 'nobody'"),
    ],
)
def test_bad_key_commands_are_one_line_errors(cli_env: str, args: list[str], message: str) -> None:
    add_collections(get_settings(), "family")
    assert runner.invoke(app, ["keys", "create", "taken", "--all"]).exit_code == 0
    result = runner.invoke(app, ["keys", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert [r.name for r in stored_keys(get_settings())] == ["taken"]


@pytest.mark.slow
@pytest.mark.slow
def test_the_token_is_alone_on_stdout_of_the_console_script(tmp_path: Path) -> None:
    env = script_env(tmp_path / "data")
    add_collections(Settings(data_dir=tmp_path / "data"), "family")
    created = run_photosearch(["keys", "create", "scripted", "--collections", "family"], env, timeout=120)
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("\n") == 1 and created.stdout.startswith("psk_")


def test_serve_refuses_to_expose_an_open_or_keyless_api(
    cli_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_api = runner.invoke(app, ["serve", "--host", "0.0.0.0"])  # auth off in the test environment
    assert open_api.exit_code == 2 and "auth is off" in open_api.output and "127.0.0.1" in open_api.output
    monkeypatch.setenv("PHOTOSEARCH_AUTH__REQUIRED", "true")
    get_settings.cache_clear()
    keyless = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert keyless.exit_code == 2 and "photosearch keys create" in keyless.output, keyless.output
    assert len(keyless.output.strip().splitlines()) == 1


def test_auth_may_be_off_on_loopback_only(
    sqlite_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    for host in ("127.0.0.1", "localhost", "::1"):
        check_access_before_serving(sqlite_settings, host)
        assert "open to this machine only" in capsys.readouterr().out
    from models.errors import InvalidInputError

    for host in ("0.0.0.0", "192.168.1.5", "example.com"):
        with pytest.raises(InvalidInputError):
            check_access_before_serving(sqlite_settings, host)
