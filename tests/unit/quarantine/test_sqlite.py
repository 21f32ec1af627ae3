"""relay.quarantine.sqlite: the bounds of a hold (the store itself is covered against real
SQLite and PostgreSQL in tests/integration/test_quarantine_store.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from relay.errors import StoreUnavailable
from relay.quarantine.sqlite import SqliteStore


def test_a_hold_stuck_behind_a_stalled_disk_is_store_unavailable_not_a_wait_forever(tmp_path, make_decision):
    """A stalled fsync cannot be made on demand: the store thread is held busy instead."""
    decision = make_decision()
    stalled = threading.Event()

    async def go():
        store = SqliteStore(f"sqlite:///{tmp_path}/q.sqlite3", hold_timeout=0.3)
        try:
            await store.list()                                    # schema in place
            blocker = asyncio.get_running_loop().run_in_executor(store._executor, stalled.wait, 30)
            with pytest.raises(StoreUnavailable, match="not durable within"):
                await asyncio.wait_for(store.hold(decision, decision.message.raw), 10)
            stalled.set()
            await blocker
            late = await store.list()                             # the write had not started: dropped
            qid = await store.hold(decision, decision.message.raw)   # and the store works again
            return late, [h.id for h in await store.list()], qid
        finally:
            stalled.set()
            await store.close()

    late, held, qid = asyncio.run(asyncio.wait_for(go(), 60))
    assert late == [] and held == [qid]
