"""The quarantine's tables, per backend, as numbered migrations.

``schema_version`` holds the versions applied. On first use a store applies
every migration above the stored version in one transaction (PostgreSQL: under
an advisory lock, so replicas starting together do not race) and refuses to
run against a schema newer than it knows. To change the schema, add version
N+1 to both dictionaries and bump ``SCHEMA_VERSION``; never edit a released
migration.

Tables: ``held`` (one row per held message: envelope, client, verdict,
findings, status, release claim), ``held_raw`` (the message bytes, apart so
listing never reads them) and ``history`` (reviewer actions, append-only).

Version 2 adds the status ``release_uncertain`` (a release that may have
reached the next hop, see :mod:`relay.quarantine.store`) to the status check.
SQLite cannot change a check constraint, so its migration rebuilds ``held``
(copy, drop, rename; the SQLite store runs migrations with foreign keys off,
so dropping the old table does not cascade to the bytes and history).
"""

from __future__ import annotations

SCHEMA_VERSION = 2

SQLITE: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE held (
            id TEXT PRIMARY KEY,
            held_at REAL NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('held', 'releasing', 'released', 'deleted')),
            mail_from TEXT NOT NULL,
            recipients TEXT NOT NULL,
            mail_options TEXT NOT NULL,
            client_address TEXT NOT NULL,
            client_name TEXT NOT NULL,
            helo TEXT NOT NULL,
            action TEXT NOT NULL,
            rules TEXT NOT NULL,
            policy_version TEXT NOT NULL,
            findings TEXT NOT NULL,
            subject TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            claim_token TEXT,
            claimed_at REAL
        )""",
        "CREATE INDEX held_held_at ON held (held_at)",
        "CREATE INDEX held_status ON held (status, held_at)",
        "CREATE TABLE held_raw (id TEXT PRIMARY KEY REFERENCES held (id) ON DELETE CASCADE, raw BLOB NOT NULL)",
        """CREATE TABLE history (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL REFERENCES held (id) ON DELETE CASCADE,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            note TEXT NOT NULL
        )""",
        "CREATE INDEX history_id ON history (id, seq)",
    ),
}

POSTGRES: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE held (
            id text PRIMARY KEY,
            held_at timestamptz NOT NULL,
            status text NOT NULL CHECK (status IN ('held', 'releasing', 'released', 'deleted')),
            mail_from text NOT NULL,
            recipients jsonb NOT NULL,
            mail_options jsonb NOT NULL,
            client_address text NOT NULL,
            client_name text NOT NULL,
            helo text NOT NULL,
            action text NOT NULL,
            rules jsonb NOT NULL,
            policy_version text NOT NULL,
            findings jsonb NOT NULL,
            subject text NOT NULL,
            size bigint NOT NULL,
            sha256 text NOT NULL,
            claim_token text,
            claimed_at timestamptz
        )""",
        "CREATE INDEX held_held_at ON held (held_at)",
        "CREATE INDEX held_status ON held (status, held_at)",
        "CREATE TABLE held_raw (id text PRIMARY KEY REFERENCES held (id) ON DELETE CASCADE, raw bytea NOT NULL)",
        "ALTER TABLE held_raw ALTER COLUMN raw SET STORAGE EXTERNAL",  # mail rarely compresses well
        """CREATE TABLE history (
            seq bigserial PRIMARY KEY,
            id text NOT NULL REFERENCES held (id) ON DELETE CASCADE,
            at timestamptz NOT NULL,
            actor text NOT NULL,
            action text NOT NULL,
            note text NOT NULL
        )""",
        "CREATE INDEX history_id ON history (id, seq)",
    ),
}


_V2_STATUSES = "CHECK (status IN ('held', 'releasing', 'released', 'deleted', 'release_uncertain'))"


def _sqlite_v2_held() -> str:
    """Version 1's ``held`` table as ``held_v2``, with the version 2 status check."""
    old = SQLITE[1][0]
    new = old.replace("CREATE TABLE held (", "CREATE TABLE held_v2 (", 1).replace(
        "CHECK (status IN ('held', 'releasing', 'released', 'deleted'))", _V2_STATUSES, 1)
    assert new.count("held_v2") == 1 and _V2_STATUSES in new
    return new


SQLITE[2] = (
    _sqlite_v2_held(),
    "INSERT INTO held_v2 SELECT * FROM held",
    "DROP TABLE held",
    "ALTER TABLE held_v2 RENAME TO held",
    "CREATE INDEX held_held_at ON held (held_at)",
    "CREATE INDEX held_status ON held (status, held_at)",
)

POSTGRES[2] = (
    "ALTER TABLE held DROP CONSTRAINT held_status_check",
    f"ALTER TABLE held ADD CONSTRAINT held_status_check {_V2_STATUSES}",
)
