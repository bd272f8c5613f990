"""Versioned migrations: per plugin and per engine, recorded, applied exactly once when several
migrators start together, and `python -m gateway migrate`."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from gateway.settings import load
from plugins.data.database import open_database
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
    env = {**os.environ, "GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_PLUGINS": "health,auth,data",
           "DATABASE_URL": scratch_database, "DATA_MIGRATE_ON_START": "false"}
    run = lambda: subprocess.run([sys.executable, "-m", "gateway", "migrate"], env=env, capture_output=True, text=True,
                                 timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    first = run()
    assert first.returncode == 0, first.stderr
    assert "applied data 0001_profiles" in first.stdout
    second = run()
    assert second.returncode == 0 and "0 applied" in second.stdout
