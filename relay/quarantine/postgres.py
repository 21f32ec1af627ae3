"""The shared quarantine: PostgreSQL (``postgresql://...``), one store for many relay replicas.

Durability: a hold is one transaction (metadata row, bytes in ``held_raw``
as ``bytea``, first history entry); :meth:`PostgresStore.hold` returns after
``COMMIT`` returns. Every session sets ``synchronous_commit = on``, so a
commit is flushed to the server's WAL on disk whatever the role or database
defaults say (the server itself must run with ``fsync = on``, its default).

The claim that makes release exactly-once locks the row (``SELECT ... FOR
UPDATE``) and runs ``UPDATE ... WHERE status = 'held'``: a second concurrent
claim waits for the first to commit, then reads ``releasing`` and updates
nothing.

Purge deletes the rows (bytes and history go with them by ``ON DELETE
CASCADE``) and then runs a plain ``VACUUM`` on those tables so the space is
reclaimed for reuse at once; like any PostgreSQL deletion, the old bytes stay
in data files until the space is reused (``VACUUM FULL`` would rewrite them
but locks out holds, so it is left to the operator).

psycopg 3's async driver through a small pool (``psycopg_pool``, 1 to 8 connections); nothing
blocks the event loop. The schema is created or migrated on first use, under
an advisory lock so replicas starting together do not race.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from relay.errors import AlreadyHandled, NotFound, StoreError, StoreUnavailable
from relay.quarantine import store as st
from relay.quarantine.schema import POSTGRES as _MIGRATIONS
from relay.quarantine.schema import SCHEMA_VERSION

_MIGRATION_LOCK = 0x51_7E1A_7001  # pg_advisory_xact_lock key for schema changes
CONNECT_TIMEOUT = 10
POOL_TIMEOUT = 15.0
OP_TIMEOUT = 60.0        # one operation (pool wait + transaction) at most; then StoreUnavailable
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


async def _configure(conn: psycopg.AsyncConnection) -> None:
    await conn.execute("SET synchronous_commit = on")
    await conn.execute(f"SET statement_timeout = {int(OP_TIMEOUT * 1000)}")
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.commit()


class PostgresStore:
    def __init__(self, url: str, lease: float = 600.0, max_connections: int = 8,
                 timeout: float = POOL_TIMEOUT) -> None:
        self.url = url
        self.lease = lease
        self.timeout = timeout
        self.hold_timeout = OP_TIMEOUT   # a hold is one operation: durable within it, or StoreUnavailable
        self._pool = psycopg_pool.AsyncConnectionPool(
            url, min_size=1, max_size=max_connections, open=False, timeout=timeout,
            kwargs={"connect_timeout": max(1, min(CONNECT_TIMEOUT, int(timeout))), "row_factory": dict_row,
                    **KEEPALIVES},
            configure=_configure, reconnect_timeout=timeout, name="quarantine",
        )
        self._ready = False
        self._lock: asyncio.Lock | None = None
        self._closed = False

    # ------------------------------------------------------------ plumbing

    async def _open(self) -> None:
        if self._ready:
            return
        if self._closed:
            raise StoreUnavailable("the quarantine store is closed")
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._ready:
                return
            try:
                # No wait here: a failed or cancelled wait() closes the pool for good (psycopg_pool),
                # which would keep the store unavailable after the database came back. The pool
                # connects in the background; connection() below is bounded by the pool's timeout.
                await self._pool.open(wait=False)
                async with self._pool.connection(timeout=self.timeout) as conn, conn.transaction():
                    await self._migrate(conn)
            except psycopg_pool.PoolTimeout as exc:
                raise StoreUnavailable(f"quarantine database unreachable: {_safe(self.url)}") from exc
            except psycopg.Error as exc:
                raise StoreUnavailable(f"quarantine database {_safe(self.url)}: {exc}") from exc
            self._ready = True

    @staticmethod
    async def _migrate(conn: psycopg.AsyncConnection) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        cur = await conn.execute("SELECT coalesce(max(version), 0) AS v FROM schema_version")
        current = (await cur.fetchone())["v"]
        if current > SCHEMA_VERSION:
            raise StoreUnavailable(f"quarantine schema version {current} is newer than this relay ({SCHEMA_VERSION})")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))

    async def _tx(self, fn, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one transaction; foreign errors become StoreUnavailable."""
        await self._open()
        try:
            async with asyncio.timeout(OP_TIMEOUT), self._pool.connection() as conn, conn.transaction():
                return await fn(conn, *args)
        except StoreError:
            raise
        except TimeoutError as exc:
            raise StoreUnavailable(f"quarantine database did not answer within {OP_TIMEOUT:.0f}s") from exc
        except psycopg_pool.PoolTimeout as exc:
            raise StoreUnavailable(f"quarantine database unreachable: {_safe(self.url)}") from exc
        except psycopg.Error as exc:
            raise StoreUnavailable(f"quarantine database: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    async def _history(conn, qid: str, actor: str, action: str, note: str, at: dt.datetime | None = None) -> None:
        await conn.execute(
            "INSERT INTO history (id, at, actor, action, note) VALUES (%s, %s, %s, %s, %s)",
            (qid, at or st.utcnow(), actor, action, note),
        )

    async def _load(self, conn, qid: str) -> st.HeldMessage:
        cur = await conn.execute(f"SELECT {', '.join(st.MESSAGE_COLUMNS)} FROM held WHERE id = %s", (qid,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no held message {qid}")
        cur = await conn.execute("SELECT at, actor, action, note FROM history WHERE id = %s ORDER BY seq", (qid,))
        history = [st.HistoryEntry(h["at"], h["actor"], h["action"], h["note"]) for h in await cur.fetchall()]
        return st.message_from_row(row, history)

    async def _expire(self, conn, qid: str | None = None) -> None:
        """Claims past their lease -> release_uncertain (all, or ``qid``'s), with a history entry each."""
        await conn.execute(
            "WITH u AS (UPDATE held SET status = 'release_uncertain' WHERE status = 'releasing'"
            " AND claimed_at < now() - make_interval(secs => %s)" + (" AND id = %s" if qid else "") +
            " RETURNING id) INSERT INTO history (id, at, actor, action, note)"
            " SELECT id, now(), 'relay', 'release_uncertain', %s FROM u",
            (self.lease, *((qid,) if qid else ()), st.EXPIRED_NOTE),
        )

    @staticmethod
    async def _status(conn, qid: str, lock: bool = False) -> dict:
        cur = await conn.execute(
            "SELECT status, claim_token, claimed_at FROM held WHERE id = %s" + (" FOR UPDATE" if lock else ""), (qid,)
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no held message {qid}")
        return row

    # ------------------------------------------------------------ operations

    async def hold(self, decision: Any, raw: bytes, recipients: Sequence[str] | None = None) -> str:
        rec = st.record_from_decision(decision, raw, recipients)
        await self._tx(self._hold, rec, bytes(raw))
        return rec.id

    async def _hold(self, conn, rec: st.NewHold, raw: bytes) -> None:
        # One statement (row, bytes, first history entry): one round trip between BEGIN and COMMIT.
        await conn.execute(
            "WITH h AS (INSERT INTO held (id, held_at, status, mail_from, recipients, mail_options, client_address,"
            " client_name, helo, action, rules, policy_version, findings, subject, size, sha256)"
            " VALUES (%s, %s, 'held', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id, held_at),"
            " r AS (INSERT INTO held_raw (id, raw) SELECT id, %s FROM h RETURNING id)"
            " INSERT INTO history (id, at, actor, action, note) SELECT h.id, h.held_at, 'relay', 'held', ''"
            " FROM h JOIN r ON r.id = h.id",
            (rec.id, rec.held_at, rec.mail_from, Jsonb(list(rec.recipients)), Jsonb(list(rec.mail_options)),
             rec.client_address, rec.client_name, rec.helo, rec.action, Jsonb(list(rec.rules)),
             rec.policy_version, Jsonb(list(rec.findings)), rec.subject, rec.size, rec.sha256, raw),
        )

    async def get(self, qid: str) -> st.HeldMessage:
        return await self._tx(self._get, st.check_id(qid))

    async def _get(self, conn, qid: str) -> st.HeldMessage:
        await self._expire(conn, qid)
        return await self._load(conn, qid)

    async def raw(self, qid: str) -> bytes:
        return await self._tx(self._raw, st.check_id(qid))

    async def _raw(self, conn, qid: str) -> bytes:
        cur = await conn.execute("SELECT raw FROM held_raw WHERE id = %s", (qid,))
        row = await cur.fetchone()
        if row is None:
            status = (await self._status(conn, qid))["status"]
            raise NotFound(f"the bytes of {qid} are gone (it was {status})")
        return bytes(row["raw"])

    async def list(self, flt: st.Filter = st.Filter()) -> list[st.HeldSummary]:
        return await self._tx(self._list, flt)

    async def _list(self, conn, flt: st.Filter) -> list[st.HeldSummary]:
        await self._expire(conn)
        where, args = [], []
        if flt.status:
            where.append("status = %s")
            args.append(flt.status)
        if flt.sender:
            where.append("lower(mail_from) LIKE %s ESCAPE '\\'")
            args.append(st.like_pattern(flt.sender))
        if flt.recipient:
            where.append("EXISTS (SELECT 1 FROM jsonb_array_elements_text(held.recipients) AS r(v)"
                         " WHERE lower(r.v) LIKE %s ESCAPE '\\')")
            args.append(st.like_pattern(flt.recipient))
        if flt.rule:
            where.append("rules @> %s")
            args.append(Jsonb([{"id": flt.rule}]))
        if flt.since:
            where.append("held_at >= %s")
            args.append(flt.since)
        if flt.until:
            where.append("held_at < %s")
            args.append(flt.until)
        sql = f"SELECT {', '.join(st.SUMMARY_COLUMNS)} FROM held"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY held_at DESC, id DESC LIMIT %s"
        args.append(flt.limit)
        cur = await conn.execute(sql, args)
        return [st.summary_from_row(r) for r in await cur.fetchall()]

    async def note(self, qid: str, actor: str, action: str, note: str = "") -> st.HeldMessage:
        return await self._tx(self._note, st.check_id(qid), actor, action, note)

    async def _note(self, conn, qid: str, actor: str, action: str, note: str) -> st.HeldMessage:
        await self._status(conn, qid)
        await self._history(conn, qid, actor, action, note)
        return await self._load(conn, qid)

    async def claim(self, qid: str, actor: str, force: bool = False) -> st.Claim:
        return await self._tx(self._claim, st.check_id(qid), actor, force)

    async def _claim(self, conn, qid: str, actor: str, force: bool) -> st.Claim:
        token = uuid.uuid4().hex
        await self._expire(conn, qid)
        before = await self._status(conn, qid, lock=True)  # a concurrent claim waits here, then sees ours
        allowed = ["held", "release_uncertain"] if force else ["held"]
        if before["status"] not in allowed:
            raise AlreadyHandled(st.not_held_error(qid, before["status"]))
        columns = ", ".join(f"u.{c}" for c in st.MESSAGE_COLUMNS)
        # Claim, history entry and bytes in one round trip; the claim's record carries no history.
        cur = await conn.execute(
            "WITH u AS (UPDATE held SET status = 'releasing', claim_token = %s, claimed_at = now()"
            " WHERE id = %s AND status = ANY(%s) RETURNING *),"
            " h AS (INSERT INTO history (id, at, actor, action, note)"
            " SELECT id, now(), %s, 'release_claimed', %s FROM u)"
            f" SELECT {columns}, r.raw FROM u LEFT JOIN held_raw r ON r.id = u.id",
            (token, qid, allowed, actor, st.claim_note(before["status"])),
        )
        row = await cur.fetchone()
        if row is None:
            raise AlreadyHandled(st.not_held_error(qid, before["status"]))
        if row["raw"] is None:
            raise StoreUnavailable(f"the bytes of {qid} are missing")
        return st.Claim(qid, token, st.message_from_row(row, ()), bytes(row["raw"]), before["status"])

    async def finish_release(self, claim: st.Claim, actor: str, note: str) -> st.HeldMessage:
        return await self._settle(claim, "released", actor, "released", note)

    async def abandon_release(self, claim: st.Claim, actor: str, reason: str) -> st.HeldMessage:
        return await self._settle(claim, "held", actor, "release_failed", reason)

    async def mark_uncertain(self, claim: st.Claim, actor: str, reason: str) -> st.HeldMessage:
        return await self._settle(claim, "release_uncertain", actor, "release_uncertain", reason)

    async def _settle(self, claim: st.Claim, status: str, actor: str, action: str, note: str) -> st.HeldMessage:
        async def run(conn) -> tuple[bool, st.HeldMessage]:
            cur = await conn.execute(
                "UPDATE held SET status = %s, claim_token = NULL, claimed_at = NULL"
                " WHERE id = %s AND status IN ('releasing', 'release_uncertain') AND claim_token = %s",
                (status, claim.id, claim.token),
            )
            lost = cur.rowcount != 1
            await self._history(conn, claim.id, actor, action, note + (st.LOST_CLAIM_SUFFIX if lost else ""))
            return lost, await self._load(conn, claim.id)

        lost, message = await self._tx(run)
        if lost:
            raise AlreadyHandled(st.lost_claim_error(claim.id))
        return message

    async def delete(self, qid: str, actor: str, note: str = "") -> st.HeldMessage:
        return await self._tx(self._delete, st.check_id(qid), actor, note)

    async def _delete(self, conn, qid: str, actor: str, note: str) -> st.HeldMessage:
        await self._expire(conn, qid)
        before = await self._status(conn, qid, lock=True)
        cur = await conn.execute(
            "UPDATE held SET status = 'deleted', claim_token = NULL, claimed_at = NULL"
            " WHERE id = %s AND status IN ('held', 'release_uncertain')", (qid,),
        )
        if cur.rowcount != 1:
            raise AlreadyHandled(st.not_held_error(qid, before["status"]))
        await conn.execute("DELETE FROM held_raw WHERE id = %s", (qid,))
        await self._history(conn, qid, actor, "deleted", note)
        return await self._load(conn, qid)

    async def purge(self, older_than: dt.datetime, actor: str) -> list[st.Purged]:
        gone = await self._tx(self._purge, older_than)
        if gone:
            await self._vacuum()
        return gone

    async def _vacuum(self) -> None:
        """Give the purged rows' space back for reuse now (plain VACUUM: no lock that stops holds)."""
        try:
            async with asyncio.timeout(OP_TIMEOUT), self._pool.connection() as conn:
                await conn.set_autocommit(True)
                try:
                    await conn.execute("VACUUM held_raw")
                    await conn.execute("VACUUM history")
                finally:
                    await conn.set_autocommit(False)
        except (psycopg.Error, psycopg_pool.PoolTimeout, TimeoutError):
            pass  # autovacuum will do it; the rows are already gone

    async def ping(self, write: bool = False) -> None:
        await self._tx(self._ping, write)

    async def count(self, status: str = "held") -> int:
        return await self._tx(self._count, status)

    @staticmethod
    async def _count(conn, status: str) -> int:
        cur = await conn.execute("SELECT count(*) AS n FROM held WHERE status = %s", (status,))
        return (await cur.fetchone())["n"]

    @staticmethod
    async def _ping(conn, write: bool) -> None:
        await conn.execute("SELECT 1 FROM schema_version")
        if write:  # write a probe row and bytes, then roll back: nothing stays
            async with conn.transaction(force_rollback=True):
                await conn.execute(st.PROBE_INSERT, st.probe_values(st.utcnow(), Jsonb))
                await conn.execute("INSERT INTO held_raw (id, raw) VALUES (%s, %s)", (st.PROBE_ID, b"probe"))

    async def _purge(self, conn, older_than: dt.datetime) -> list[st.Purged]:
        cur = await conn.execute(
            "DELETE FROM held WHERE held_at < %s AND NOT"
            " (status = 'releasing' AND claimed_at >= now() - make_interval(secs => %s))"
            " RETURNING id, sha256, status, held_at",
            (older_than, self.lease),
        )  # held_raw and history go with it (ON DELETE CASCADE)
        rows = sorted(await cur.fetchall(), key=lambda r: r["held_at"])
        return [st.Purged(r["id"], r["sha256"], r["status"]) for r in rows]

    async def check(self) -> list[str]:
        return await self._tx(self._check)

    async def _check(self, conn) -> list[str]:
        cur = await conn.execute(
            "SELECT held.id, held.status, held.sha256, held.size, encode(sha256(held_raw.raw), 'hex') AS digest,"
            " length(held_raw.raw) AS length, held_raw.id IS NOT NULL AS has_raw"
            " FROM held LEFT JOIN held_raw ON held_raw.id = held.id ORDER BY held.id"
        )
        problems = []
        for row in await cur.fetchall():
            if row["status"] == "deleted":
                if row["has_raw"]:
                    problems.append(f"{row['id']}: deleted but its bytes are still stored")
            elif not row["has_raw"]:
                problems.append(f"{row['id']}: {row['status']} but its bytes are missing")
            elif row["digest"] != row["sha256"] or row["length"] != row["size"]:
                problems.append(f"{row['id']}: bytes do not match the stored SHA-256")
        cur = await conn.execute("SELECT id FROM held_raw WHERE id NOT IN (SELECT id FROM held)")
        problems.extend(f"{r['id']}: bytes without a record" for r in await cur.fetchall())
        return problems

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._pool.close()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://..."
    host, port, db = info.get("host", ""), info.get("port", ""), info.get("dbname", "")
    return f"postgresql://{info.get('user', '')}@{host}{':' + str(port) if port else ''}/{db}"
