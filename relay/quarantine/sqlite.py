"""The embedded quarantine: one SQLite file on local disk (``sqlite:///path``).

Durability: the database runs in WAL mode with ``synchronous=FULL``, and a
hold is one ``BEGIN IMMEDIATE ... COMMIT`` transaction that writes the
metadata row, the message bytes (a BLOB in ``held_raw``, in the same file) and
the first history entry. SQLite fsyncs the WAL before ``COMMIT`` returns, so
when :meth:`SqliteStore.hold` returns the message is on disk; a crash at any
earlier moment leaves no trace of it (the sending MTA still has it and
retries on the 4xx it gets). Holds that arrive while a commit is in progress
are written together by the next transaction (group commit: one fsync for
many messages, each hold still returning only after its own COMMIT). Keeping the bytes inside the database rather than
in files means no orphan files, no path built from an id, and one fsync per
hold. ``secure_delete`` is on, so deleted and purged bytes are overwritten,
and a purge checkpoints the WAL.

Every SQLite call runs on one dedicated thread that owns the connection
(nothing blocks the event loop); several processes may share the file
(WAL + ``busy_timeout``; writes take the lock up front with ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from relay.errors import AlreadyHandled, NotFound, StoreError, StoreUnavailable
from relay.quarantine import store as st
from relay.quarantine.schema import SCHEMA_VERSION
from relay.quarantine.schema import SQLITE as _MIGRATIONS

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
GROUP_COMMIT_MAX = 64                      # holds written by one transaction at most
GROUP_COMMIT_BYTES = 64 * 1024 * 1024      # ... and their bytes at most
HOLD_TIMEOUT = 60.0                         # a hold not durable by then is StoreUnavailable (451)


def _ts(value: dt.datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, st.UTC)


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["held_at"] = _dt(out["held_at"])
    for key in ("recipients", "mail_options", "rules", "findings"):
        if key in out:
            out[key] = json.loads(out[key])
    return out


class SqliteStore:
    def __init__(self, url: str, lease: float = 600.0, hold_timeout: float = HOLD_TIMEOUT) -> None:
        if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
            raise StoreUnavailable("expected sqlite:///path/to/file")
        self.url = url
        self.path = Path(url[len("sqlite:///"):])
        self.lease = lease
        self.hold_timeout = hold_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quarantine-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._pending: list[tuple[st.NewHold, bytes, asyncio.Future]] = []
        self._pending_lock = threading.Lock()

    # ------------------------------------------------------------ plumbing (store thread only)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreUnavailable("the quarantine store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args)

    def _call(self, fn: Callable[..., T], args: tuple) -> T:
        try:
            conn = self._connection()
            return fn(conn, *args)
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"quarantine database {self.path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        new_file = not self.path.exists()
        if new_file:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The file holds mail: readable by its owner only.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(f"quarantine database {self.path}: cannot use WAL mode (got {mode})")
            for pragma in ("synchronous=FULL", "foreign_keys=ON", "secure_delete=ON",
                           f"busy_timeout={BUSY_TIMEOUT_MS}"):
                conn.execute(f"PRAGMA {pragma}")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        if new_file:
            _fsync_dir(self.path.parent)
        self._conn = conn
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Apply the missing migrations in one transaction, foreign keys off meanwhile (a table
        rebuilt by copy, drop and rename must not cascade its drop); checked before COMMIT."""
        conn.execute("PRAGMA foreign_keys=OFF")   # no effect inside a transaction: set before BEGIN
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            if current > SCHEMA_VERSION:
                raise StoreUnavailable(f"quarantine schema version {current} is newer than this relay ({SCHEMA_VERSION})")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise StoreUnavailable("quarantine schema migration left rows without their message")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute("PRAGMA foreign_keys=ON")

    @contextlib.contextmanager
    def _tx(self, conn: sqlite3.Connection):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a COMMIT that failed (I/O error, disk full) must not leave it open
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _history(conn: sqlite3.Connection, qid: str, actor: str, action: str, note: str, at: float | None = None) -> None:
        conn.execute(
            "INSERT INTO history (id, at, actor, action, note) VALUES (?, ?, ?, ?, ?)",
            (qid, _ts(st.utcnow()) if at is None else at, actor, action, note),
        )

    def _load(self, conn: sqlite3.Connection, qid: str) -> st.HeldMessage:
        row = conn.execute(f"SELECT {', '.join(st.MESSAGE_COLUMNS)} FROM held WHERE id = ?", (qid,)).fetchone()
        if row is None:
            raise NotFound(f"no held message {qid}")
        history = [
            st.HistoryEntry(_dt(h["at"]), h["actor"], h["action"], h["note"])
            for h in conn.execute("SELECT at, actor, action, note FROM history WHERE id = ? ORDER BY seq", (qid,))
        ]
        return st.message_from_row(_decode(row), history)

    def _expire(self, conn: sqlite3.Connection, qid: str | None = None) -> None:
        """Claims past their lease -> release_uncertain (all, or ``qid``'s), inside a transaction."""
        where = "status = 'releasing' AND claimed_at < ?" + (" AND id = ?" if qid else "")
        args = (_ts(st.utcnow()) - self.lease, *((qid,) if qid else ()))
        expired = [r["id"] for r in conn.execute(f"SELECT id FROM held WHERE {where}", args)]
        if not expired:
            return
        conn.execute(f"UPDATE held SET status = 'release_uncertain' WHERE {where}", args)
        for eid in expired:
            self._history(conn, eid, "relay", "release_uncertain", st.EXPIRED_NOTE)

    def _expire_outside(self, conn: sqlite3.Connection, qid: str | None = None) -> None:
        """:meth:`_expire` for readers: a write transaction only when there is a claim past its lease."""
        where = "status = 'releasing' AND claimed_at < ?" + (" AND id = ?" if qid else "")
        args = (_ts(st.utcnow()) - self.lease, *((qid,) if qid else ()))
        if conn.execute(f"SELECT 1 FROM held WHERE {where} LIMIT 1", args).fetchone() is not None:
            with self._tx(conn):
                self._expire(conn, qid)

    def _status(self, conn: sqlite3.Connection, qid: str) -> sqlite3.Row:
        row = conn.execute("SELECT status, claim_token, claimed_at FROM held WHERE id = ?", (qid,)).fetchone()
        if row is None:
            raise NotFound(f"no held message {qid}")
        return row

    # ------------------------------------------------------------ operations

    async def hold(self, decision: Any, raw: bytes, recipients: Sequence[str] | None = None) -> str:
        """Durable when it returns. Holds waiting together share one transaction (group commit):
        each returns only after the COMMIT that wrote it, and a failed COMMIT fails them all.

        Bounded: a hold not durable within ``hold_timeout`` (a stalled disk, a stuck fsync)
        raises :class:`StoreUnavailable`, so the client gets a 451 instead of waiting forever.
        A hold whose write had not started is dropped; one already being written may still
        commit later, unacknowledged: the client retries, and at worst a second copy is held.
        """
        if self._closed:
            raise StoreUnavailable("the quarantine store is closed")
        rec = st.record_from_decision(decision, raw, recipients)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        entry = (rec, bytes(raw), done)
        with self._pending_lock:
            self._pending.append(entry)
        loop.run_in_executor(self._executor, self._write_pending)
        try:
            await asyncio.wait_for(done, self.hold_timeout)
        except TimeoutError:
            raise StoreUnavailable(f"quarantine write not durable within {self.hold_timeout:g} s") from None
        finally:
            if not done.done() or done.cancelled():   # timed out or cancelled: a late write answers nobody
                with self._pending_lock, contextlib.suppress(ValueError):
                    self._pending.remove(entry)
        return rec.id

    def _write_pending(self) -> None:
        """Store thread: write every waiting hold (up to a bound) in one transaction, then answer each."""
        with self._pending_lock:
            batch, size = [], 0
            while self._pending and len(batch) < GROUP_COMMIT_MAX and (not batch or size < GROUP_COMMIT_BYTES):
                batch.append(self._pending.pop(0))
                size += len(batch[-1][1])
        if not batch:
            return
        error: BaseException | None = None
        try:
            conn = self._connection()
            with self._tx(conn):
                for rec, raw, _ in batch:
                    self._insert(conn, rec, raw)
        except StoreError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - every holder must get an answer, whatever failed
            error = StoreUnavailable(f"quarantine database {self.path}: {type(exc).__name__}: {exc}")
        for _, _, done in batch:
            with contextlib.suppress(RuntimeError):  # the holder's event loop is gone: nobody waits
                done.get_loop().call_soon_threadsafe(_answer, done, error)

    def _insert(self, conn: sqlite3.Connection, rec: st.NewHold, raw: bytes) -> None:
        at = _ts(rec.held_at)
        conn.execute(
            "INSERT INTO held (id, held_at, status, mail_from, recipients, mail_options, client_address,"
            " client_name, helo, action, rules, policy_version, findings, subject, size, sha256)"
            " VALUES (?, ?, 'held', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.id, at, rec.mail_from, json.dumps(rec.recipients), json.dumps(rec.mail_options),
             rec.client_address, rec.client_name, rec.helo, rec.action, json.dumps(rec.rules),
             rec.policy_version, json.dumps(rec.findings), rec.subject, rec.size, rec.sha256),
        )
        conn.execute("INSERT INTO held_raw (id, raw) VALUES (?, ?)", (rec.id, raw))
        self._history(conn, rec.id, "relay", "held", "", at)

    async def get(self, qid: str) -> st.HeldMessage:
        qid = st.check_id(qid)
        return await self._run(self._get, qid)

    def _get(self, conn: sqlite3.Connection, qid: str) -> st.HeldMessage:
        self._expire_outside(conn, qid)
        return self._load(conn, qid)

    async def raw(self, qid: str) -> bytes:
        qid = st.check_id(qid)
        return await self._run(self._raw, qid)

    def _raw(self, conn: sqlite3.Connection, qid: str) -> bytes:
        row = conn.execute("SELECT raw FROM held_raw WHERE id = ?", (qid,)).fetchone()
        if row is None:
            status = self._status(conn, qid)["status"]
            raise NotFound(f"the bytes of {qid} are gone (it was {status})")
        return bytes(row["raw"])

    async def list(self, flt: st.Filter = st.Filter()) -> list[st.HeldSummary]:
        return await self._run(self._list, flt)

    def _list(self, conn: sqlite3.Connection, flt: st.Filter) -> list[st.HeldSummary]:
        self._expire_outside(conn)
        where, args = [], []
        if flt.status:
            where.append("status = ?")
            args.append(flt.status)
        if flt.sender:
            where.append("lower(mail_from) LIKE ? ESCAPE '\\'")
            args.append(st.like_pattern(flt.sender))
        if flt.recipient:
            where.append("EXISTS (SELECT 1 FROM json_each(held.recipients) WHERE lower(value) LIKE ? ESCAPE '\\')")
            args.append(st.like_pattern(flt.recipient))
        if flt.rule:
            where.append("EXISTS (SELECT 1 FROM json_each(held.rules) WHERE json_extract(value, '$.id') = ?)")
            args.append(flt.rule)
        if flt.since:
            where.append("held_at >= ?")
            args.append(_ts(flt.since))
        if flt.until:
            where.append("held_at < ?")
            args.append(_ts(flt.until))
        sql = f"SELECT {', '.join(st.SUMMARY_COLUMNS)} FROM held"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY held_at DESC, id DESC LIMIT ?"
        args.append(flt.limit)
        return [st.summary_from_row(_decode(r)) for r in conn.execute(sql, args)]

    async def note(self, qid: str, actor: str, action: str, note: str = "") -> st.HeldMessage:
        qid = st.check_id(qid)
        return await self._run(self._note, qid, actor, action, note)

    def _note(self, conn: sqlite3.Connection, qid: str, actor: str, action: str, note: str) -> st.HeldMessage:
        with self._tx(conn):
            self._status(conn, qid)
            self._history(conn, qid, actor, action, note)
        return self._load(conn, qid)

    async def claim(self, qid: str, actor: str, force: bool = False) -> st.Claim:
        qid = st.check_id(qid)
        return await self._run(self._claim, qid, actor, force)

    def _claim(self, conn: sqlite3.Connection, qid: str, actor: str, force: bool) -> st.Claim:
        token = uuid.uuid4().hex
        allowed = ("held", "release_uncertain") if force else ("held",)
        with self._tx(conn):
            self._expire(conn, qid)
            before = self._status(conn, qid)
            if before["status"] not in allowed:
                raise AlreadyHandled(st.not_held_error(qid, before["status"]))
            conn.execute("UPDATE held SET status = 'releasing', claim_token = ?, claimed_at = ? WHERE id = ?",
                         (token, _ts(st.utcnow()), qid))   # BEGIN IMMEDIATE: nobody changed it since
            self._history(conn, qid, actor, "release_claimed", st.claim_note(before["status"]))
            raw = conn.execute("SELECT raw FROM held_raw WHERE id = ?", (qid,)).fetchone()
            if raw is None:
                raise StoreUnavailable(f"the bytes of {qid} are missing")
            message = self._load(conn, qid)
        return st.Claim(qid, token, message, bytes(raw["raw"]), before["status"])

    async def finish_release(self, claim: st.Claim, actor: str, note: str) -> st.HeldMessage:
        return await self._run(self._settle, claim, "released", actor, "released", note)

    async def abandon_release(self, claim: st.Claim, actor: str, reason: str) -> st.HeldMessage:
        return await self._run(self._settle, claim, "held", actor, "release_failed", reason)

    async def mark_uncertain(self, claim: st.Claim, actor: str, reason: str) -> st.HeldMessage:
        return await self._run(self._settle, claim, "release_uncertain", actor, "release_uncertain", reason)

    def _settle(self, conn: sqlite3.Connection, claim: st.Claim, status: str, actor: str, action: str,
                note: str) -> st.HeldMessage:
        with self._tx(conn):
            cur = conn.execute(
                "UPDATE held SET status = ?, claim_token = NULL, claimed_at = NULL"
                " WHERE id = ? AND status IN ('releasing', 'release_uncertain') AND claim_token = ?",
                (status, claim.id, claim.token),
            )
            lost = cur.rowcount != 1
            self._history(conn, claim.id, actor, action, note + (st.LOST_CLAIM_SUFFIX if lost else ""))
        if lost:
            raise AlreadyHandled(st.lost_claim_error(claim.id))
        return self._load(conn, claim.id)

    async def delete(self, qid: str, actor: str, note: str = "") -> st.HeldMessage:
        qid = st.check_id(qid)
        return await self._run(self._delete, qid, actor, note)

    def _delete(self, conn: sqlite3.Connection, qid: str, actor: str, note: str) -> st.HeldMessage:
        with self._tx(conn):
            self._expire(conn, qid)
            before = self._status(conn, qid)
            cur = conn.execute(
                "UPDATE held SET status = 'deleted', claim_token = NULL, claimed_at = NULL"
                " WHERE id = ? AND status IN ('held', 'release_uncertain')", (qid,),
            )
            if cur.rowcount != 1:
                raise AlreadyHandled(st.not_held_error(qid, before["status"]))
            conn.execute("DELETE FROM held_raw WHERE id = ?", (qid,))
            self._history(conn, qid, actor, "deleted", note)
        return self._load(conn, qid)

    async def purge(self, older_than: dt.datetime, actor: str) -> list[st.Purged]:
        return await self._run(self._purge, older_than)

    def _purge(self, conn: sqlite3.Connection, older_than: dt.datetime) -> list[st.Purged]:
        now = _ts(st.utcnow())
        cond = "held_at < ? AND NOT (status = 'releasing' AND claimed_at >= ?)"
        args = (_ts(older_than), now - self.lease)
        with self._tx(conn):
            gone = [st.Purged(r["id"], r["sha256"], r["status"])
                    for r in conn.execute(f"SELECT id, sha256, status FROM held WHERE {cond} ORDER BY held_at", args)]
            conn.execute(f"DELETE FROM held_raw WHERE id IN (SELECT id FROM held WHERE {cond})", args)
            conn.execute(f"DELETE FROM history WHERE id IN (SELECT id FROM held WHERE {cond})", args)
            conn.execute(f"DELETE FROM held WHERE {cond}", args)
        if gone:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

    async def ping(self, write: bool = False) -> None:
        await self._run(self._ping, write)

    async def count(self, status: str = "held") -> int:
        return await self._run(self._count, status)

    @staticmethod
    def _count(conn: sqlite3.Connection, status: str) -> int:
        return conn.execute("SELECT count(*) FROM held WHERE status = ?", (status,)).fetchone()[0]

    @staticmethod
    def _ping(conn: sqlite3.Connection, write: bool) -> None:
        conn.execute("SELECT 1 FROM schema_version").fetchall()
        if write:  # take the write lock and write a probe row and bytes, then roll back: nothing stays
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(st.PROBE_INSERT.replace("%s", "?"), st.probe_values(_ts(st.utcnow()), json.dumps))
                conn.execute("INSERT INTO held_raw (id, raw) VALUES (?, ?)", (st.PROBE_ID, b"probe"))
            finally:
                conn.execute("ROLLBACK")

    async def check(self) -> list[str]:
        return await self._run(self._check)

    def _check(self, conn: sqlite3.Connection) -> list[str]:
        problems = []
        rows = conn.execute(
            "SELECT held.id, held.status, held.sha256, held.size, held_raw.raw FROM held"
            " LEFT JOIN held_raw ON held_raw.id = held.id ORDER BY held.id"
        )
        for row in rows:
            raw = row["raw"]
            if row["status"] == "deleted":
                if raw is not None:
                    problems.append(f"{row['id']}: deleted but its bytes are still stored")
            elif raw is None:
                problems.append(f"{row['id']}: {row['status']} but its bytes are missing")
            elif st.sha256(bytes(raw)) != row["sha256"] or len(raw) != row["size"]:
                problems.append(f"{row['id']}: bytes do not match the stored SHA-256")
        for row in conn.execute("SELECT id FROM held_raw WHERE id NOT IN (SELECT id FROM held)"):
            problems.append(f"{row['id']}: bytes without a record")
        return problems

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
            self._conn = None
        self._closed = True
        self._executor.shutdown(wait=True)


def _answer(done: asyncio.Future, error: BaseException | None) -> None:
    if done.done():  # the holder was cancelled; its row may still be stored (harmless: never acknowledged)
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
