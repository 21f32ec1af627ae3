"""The schema migrations (relay/quarantine/schema.py) and backend choice (relay/quarantine/__init__.py)."""

from __future__ import annotations

import pytest

from relay.errors import StoreUnavailable
from relay.quarantine import lease_for, open_store, schema
from relay.quarantine.postgres import PostgresStore
from relay.quarantine.sqlite import SqliteStore


def test_every_version_has_a_migration_on_both_backends():
    expected = set(range(1, schema.SCHEMA_VERSION + 1))
    assert set(schema.SQLITE) == expected and set(schema.POSTGRES) == expected


def test_both_backends_create_the_same_tables():
    def tables(migrations):
        return {stmt.split("(")[0].split()[-1] for v in migrations.values() for stmt in v if stmt.startswith("CREATE TABLE")}

    assert tables(schema.SQLITE) == tables(schema.POSTGRES) == {"held", "held_raw", "history"}


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
