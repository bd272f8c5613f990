"""Versioned migrations: per plugin and per engine, recorded, applied exactly once when several
migrators start together, and `python -m gateway migrate`."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.app import build
from gateway.settings import load
from plugins.auth.issuer import LocalIssuer
from plugins.data.api import DATABASE
from plugins.data import open_database
from plugins.data.migrator import Migrations
from plugins.data.settings import DataSettings


@pytest.fixture
def sources(tmp_path):
    """Two plugins' migrations; alpha's second one differs per engine and fails if run twice."""
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    alpha.mkdir()
    beta.mkdir()
    (alpha / "0001_items.sql").write_text(
        "-- a comment; with a semicolon\nCREATE TABLE alpha_items (id INTEGER NOT NULL PRIMARY KEY);\n"
        "INSERT INTO alpha_items (id) VALUES (1);\n")
    (alpha / "0002_extra.mysql.sql").write_text("ALTER TABLE alpha_items ADD COLUMN extra VARCHAR(10) NULL;\n")
    (alpha / "0002_extra.sqlite.sql").write_text("ALTER TABLE alpha_items ADD COLUMN extra TEXT NULL;\n")
    (beta / "0001_things.sql").write_text("CREATE TABLE beta_things (id INTEGER NOT NULL PRIMARY KEY)")
    return {"alpha": alpha, "beta": beta}


async def migrator(url: str, sources: dict):
    database = open_database(load(DataSettings, {"GATEWAY_ENV": "test", "DATABASE_URL": url}))
    for plugin, directory in sources.items():
        database.migrations.add(plugin, directory)
    await database.start()
    return database


@pytest.mark.parametrize("engine", ["mysql", "sqlite"])
async def test_concurrent_migrators_apply_each_migration_once(engine, sources, scratch_database, tmp_path):
    url = scratch_database if engine == "mysql" else f"sqlite:///{tmp_path}/data.db"
    databases = [await migrator(url, sources) for _ in range(5)]
    try:
        applied = await asyncio.gather(*(d.migrations.apply(d) for d in databases))
        names = sorted(f"{m.plugin}.{m.version}.{m.name}" for batch in applied for m in batch)
        assert names == ["alpha.1.items", "alpha.2.extra", "beta.1.things"]
        database = databases[0]
        rows = await database.fetch_all("SELECT plugin, version, name FROM gateway_migrations ORDER BY plugin, version")
        assert [(r["plugin"], r["version"], r["name"]) for r in rows] == [
            ("alpha", 1, "items"), ("alpha", 2, "extra"), ("beta", 1, "things")]
        assert await database.fetch_all("SELECT id, extra FROM alpha_items") == [{"id": 1, "extra": None}]
        assert await database.migrations.apply(database) == []
    finally:
        for database in databases:
            await database.close()


def test_migration_files_must_be_named_and_versioned_once(tmp_path):
    migrations = Migrations()
    (tmp_path / "0001_one.sql").write_text("SELECT 1;")
    (tmp_path / "0001_again.sql").write_text("SELECT 1;")
    migrations.add("p", tmp_path)
    with pytest.raises(ValueError, match="version 1"):
        migrations.for_dialect("sqlite")
    (tmp_path / "0001_again.sql").rename(tmp_path / "two.sql")
    with pytest.raises(ValueError, match="not named"):
        migrations.for_dialect("sqlite")
    with pytest.raises(ValueError, match="not a directory"):
        migrations.add("p", tmp_path / "missing")


def test_the_migrate_command_applies_then_finds_nothing_to_do(scratch_database, tmp_path):
    env = {**os.environ, "GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(tmp_path),
           "DATABASE_URL": scratch_database, "DATA_MIGRATE_ON_START": "false"}
    run = lambda: subprocess.run([sys.executable, "-m", "gateway", "migrate"], env=env, capture_output=True, text=True,
                                 timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    first = run()
    assert first.returncode == 0, first.stderr
    assert "applied profiles 0001_profiles" in first.stdout and "applied media 0002_profile_avatar" in first.stdout
    second = run()
    assert second.returncode == 0 and "0 applied" in second.stdout


LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy-schema"


@pytest.mark.parametrize("engine", ["mysql", "sqlite"])
async def test_a_database_made_before_the_profiles_plugin_upgrades_in_place(engine, scratch_database, tmp_path,
                                                                          aiohttp_client):
    """data 0001 once made the profiles table, avatar column included: the profiles and media
    migrations that replace it are recorded without running, and every row stays."""
    url = scratch_database if engine == "mysql" else f"sqlite:///{tmp_path}/legacy.db"
    env = {"GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(tmp_path), "DATABASE_URL": url}
    legacy = open_database(load(DataSettings, env))
    legacy.migrations.add("data", LEGACY / "data")
    legacy.migrations.add("media", LEGACY / "media")
    await legacy.start()
    try:
        await legacy.migrations.apply(legacy)
        async with legacy.transaction() as tx:
            await tx.execute("INSERT INTO profiles (id, username, display_name, bio, locale, avatar_media_id, "
                             "created_at, updated_at, version) VALUES ('alice', 'alice', 'Alice', 'hi', 'en', "
                             "'m1', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', 3)")
            await tx.execute("INSERT INTO media (id, owner, purpose, status, content_type, size, object_key, "
                             "created_at, updated_at, version) VALUES ('m1', 'alice', 'avatar', 'ready', "
                             "'image/png', 16, 'avatars/alice/m1.png', '2025-01-01T00:00:00.000Z', "
                             "'2025-01-01T00:00:00.000Z', 2)")
    finally:
        await legacy.close()

    built = build(env)  # the default plugins; start-up migrates
    client = await aiohttp_client(built.app)
    token = LocalIssuer(f"{tmp_path}/dev-signing-key.pem").mint("alice")
    profile = await (await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert profile["display_name"] == "Alice" and profile["version"] == 3
    assert profile["avatar"]["media_id"] == "m1" and profile["avatar"]["url"].endswith("avatars/alice/m1.png")
    database = built.registry.services[DATABASE]
    records = {(row["plugin"], row["version"]) for row in
               await database.fetch_all("SELECT plugin, version FROM gateway_migrations")}
    # the legacy records stay; the migrations that replace data 1 are recorded (the later ones ran)
    assert {("data", 1), ("media", 1), ("profiles", 1), ("media", 2), ("accounts", 1)} <= records
