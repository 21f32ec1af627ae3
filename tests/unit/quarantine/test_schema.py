"""The schema migrations (relay/quarantine/schema.py) and backend choice (relay/quarantine/__init__.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from unittest import mock

import pytest

from relay.errors import StoreUnavailable
from relay.quarantine import lease_for, open_store, schema
from relay.quarantine.postgres import PostgresStore
from relay.quarantine.sqlite import SqliteStore


def test_every_version_has_a_migration_on_both_backends():
    expected = set(range(1, schema.SCHEMA_VERSION + 1))
    assert set(schema.SQLITE) == expected and set(schema.POSTGRES) == expected


def test_both_backends_create_the_same_tables(tmp_path):
    def created(migrations):
        return {stmt.split("(")[0].split()[-1] for v in migrations.values() for stmt in v if stmt.startswith("CREATE TABLE")}

    assert created(schema.POSTGRES) == {"held", "held_raw", "history"}
    store = SqliteStore(f"sqlite:///{tmp_path}/q.sqlite3")
    asyncio.run(_ping_and_close(store))
    with sqlite3.connect(tmp_path / "q.sqlite3") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert tables - {"sqlite_sequence", "schema_version"} == {"held", "held_raw", "history"}


async def _ping_and_close(store) -> None:
    async with store:
        await store.ping(write=True)


def test_a_version_1_sqlite_store_is_migrated_with_its_rows_bytes_and_history(tmp_path, make_decision):
    """Version 2 rebuilds ``held`` (new status check): nothing held before may be lost or cascade away."""
    path = tmp_path / "q.sqlite3"
    url = f"sqlite:///{path}"
    decision = make_decision()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in schema.SQLITE[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.commit()
    conn.close()
    with mock.patch("relay.quarantine.sqlite.SCHEMA_VERSION", 1):     # a version 1 relay holds one message
        async def hold_v1():
            async with SqliteStore(url) as store:
                return await store.hold(decision, decision.message.raw)
        qid = asyncio.run(hold_v1())

    async def go():
        async with SqliteStore(url, lease=0.05) as store:
            before = await store.get(qid)
            claim = await store.claim(qid, "rev")
            await asyncio.sleep(0.1)
            after = await store.get(qid)           # the new status is accepted by the rebuilt table
            return before, claim, after, await store.check(), await store.raw(qid)

    before, claim, after, problems, raw = asyncio.run(go())
    assert before.status == "held" and [h.action for h in before.history] == ["held"]
    assert claim.raw == decision.message.raw and raw == decision.message.raw
    assert after.status == "release_uncertain" and problems == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'held_v2'").fetchone()[0] == 0
        assert conn.execute("PRAGMA foreign_key_list(held_raw)").fetchone()[2] == "held"
    conn.close()


def test_open_store_picks_the_backend_without_io(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/sub/q.sqlite3", lease=5)
    assert isinstance(store, SqliteStore) and store.lease == 5
    assert not (tmp_path / "sub").exists()  # nothing touched before first use
    store._executor.shutdown()
    assert isinstance(open_store("postgresql://u@127.0.0.1:1/db"), PostgresStore)
    with pytest.raises(StoreUnavailable):
        open_store("mysql://nope")


def test_lease_is_longer_than_a_release_can_take(make_settings):
    assert lease_for(make_settings()) == 600.0
    assert lease_for(make_settings(upstream_timeout="1s")) == 60.0
