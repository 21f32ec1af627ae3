"""The quarantine: held messages, kept durably until a reviewer releases or deletes them.

``open_store(settings.quarantine)`` picks the backend from the URL:

- ``sqlite:///path`` -- :mod:`relay.quarantine.sqlite`, the embedded default
  (one file on local disk, WAL, message bytes inside the database);
- ``postgresql://...`` -- :mod:`relay.quarantine.postgres`, shared by many
  relay replicas (any replica's CLI can release any held message).

Both implement :class:`relay.quarantine.store.Store` and pass the same test
suite. Backends connect lazily: opening a store does no I/O; the first
operation creates or migrates the schema.
"""

from __future__ import annotations

from relay.errors import StoreUnavailable
from relay.quarantine.store import Store

DEFAULT_LEASE = 600.0


def lease_for(settings) -> float:
    """How long a release claim lasts before it counts as a releaser that died (``release_uncertain``).

    Ten times the next hop's per-exchange timeout (600 s by default): longer than
    any release can take, so a live release is never mistaken for a dead one.
    """
    return max(60.0, 10 * float(settings.upstream_timeout))


def open_store(url: str, *, lease: float = DEFAULT_LEASE) -> Store:
    """The store for ``url`` (``sqlite:///path`` or ``postgresql://...``); no I/O until first use."""
    if url.startswith("sqlite:///"):
        from relay.quarantine.sqlite import SqliteStore

        return SqliteStore(url, lease=lease)
    if url.startswith(("postgresql://", "postgres://")):
        from relay.quarantine.postgres import PostgresStore

        return PostgresStore(url, lease=lease)
    raise StoreUnavailable("quarantine URL must start with sqlite:/// or postgresql://")


__all__ = ["Store", "open_store", "lease_for", "DEFAULT_LEASE"]
