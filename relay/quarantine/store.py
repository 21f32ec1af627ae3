"""The quarantine store: what a held message keeps, and the interface both backends share.

A held message keeps its raw bytes (byte-exact, with their SHA-256), the
envelope (sender, the recipients it was held for, mail parameters), the client
(address, name, HELO), the time, the verdict (action, matched rules with id,
clause and reason, policy version), the redacted findings, a status and the
history of everything reviewers did to it.

Status moves only along these edges::

    held --claim--> releasing --next hop accepted--> released
      ^               |    |
      +-- refused ----+    +-- reply lost after the data, or lease ran out --> release_uncertain
          (or down before the data; history says why)                              |
    releasing <--claim with force (a duplicate is possible)------------------------+
    held, release_uncertain --delete--> deleted   (bytes removed; metadata and hash kept for audit)
    any (but a live claim) --purge--> gone

``releasing`` carries a claim token and a claim time. The claim is one atomic
``UPDATE ... WHERE status = 'held'`` so two reviewers releasing the same
message at once get one delivery and one :class:`~relay.errors.AlreadyHandled`.

The relay never sends a message twice on its own. A release that may have
reached the next hop without our knowing the answer ends in
``release_uncertain``: the next hop's reply to the end of the data was lost,
or the claim outlived its lease (the releasing process died, perhaps after the
next hop's 250 and before the commit). Every store operation that looks at a
message first turns claims past their lease into ``release_uncertain`` (with
a history entry saying so); the claim token stays, so a releaser that was
only slow can still record what the next hop said. A plain claim refuses a
``release_uncertain`` message (:class:`~relay.errors.AlreadyHandled`); a
claim with ``force`` (``relay quarantine release --force``, after the
reviewer has checked the next hop's log) takes it, knowing a duplicate is
possible.

Ids are opaque: ``q-`` and 26 lower-case Crockford base32 characters (48 bits
of milliseconds, 80 random bits, so they sort by time). Every id from outside
goes through :func:`check_id` before any use; ids are never used in paths.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from relay.errors import NotFound

UTC = dt.timezone.utc

STATUSES = ("held", "releasing", "released", "deleted", "release_uncertain")

# History note when a claim outlived its lease (see the module docstring).
EXPIRED_NOTE = ("the release claim outlived its lease: the releasing process died or lost the store, perhaps after"
                " the next hop accepted the message; not resent. Check the next hop's log for it, then"
                " `relay quarantine release --force` sends it again (a duplicate is possible)")

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
ID_RE = re.compile(r"q-[0-9a-hjkmnp-tv-z]{26}")
_SHOWN_ID_CHARS = 40


def new_id(now: float | None = None) -> str:
    """A fresh id: ``q-`` + 10 characters of milliseconds + 16 random characters."""
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "q-" + "".join(reversed(chars))


def check_id(text: object) -> str:
    """``text`` if it is a well-formed quarantine id; otherwise :class:`NotFound` with a safe message."""
    if isinstance(text, str) and ID_RE.fullmatch(text):
        return text
    if not isinstance(text, str) or not text:
        shown = "an empty id"
    else:
        sample = text[:_SHOWN_ID_CHARS].encode("unicode_escape").decode("ascii")
        shown = repr(sample + ("…" if len(text) > _SHOWN_ID_CHARS else ""))
    raise NotFound(f"{shown} is not a quarantine id (expected q- followed by 26 letters and digits)")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: dt.datetime
    actor: str
    action: str          # held, reveal, export, release_claimed, release_failed, release_uncertain, released, deleted
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"at": self.at.isoformat(), "actor": self.actor, "action": self.action, "note": self.note}


@dataclass(frozen=True, slots=True)
class HeldSummary:
    """One line of ``relay quarantine list``."""

    id: str
    held_at: dt.datetime
    status: str
    mail_from: str
    recipients: tuple[str, ...]
    action: str
    rules: tuple[Mapping[str, object], ...]      # RuleMatch.as_dict()
    size: int
    sha256: str
    subject: str

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(str(r.get("id", "")) for r in self.rules)


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """Everything kept about one held message except its bytes (:meth:`Store.raw`)."""

    id: str
    held_at: dt.datetime
    status: str
    mail_from: str
    recipients: tuple[str, ...]
    mail_options: tuple[str, ...]
    client_address: str
    client_name: str
    helo: str
    action: str
    rules: tuple[Mapping[str, object], ...]
    policy_version: str
    findings: tuple[Mapping[str, object], ...]   # Finding.as_dict(): redacted already
    size: int
    sha256: str
    subject: str
    history: tuple[HistoryEntry, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "held_at": self.held_at.isoformat(), "status": self.status,
            "mail_from": self.mail_from, "recipients": list(self.recipients),
            "mail_options": list(self.mail_options), "client_address": self.client_address,
            "client_name": self.client_name, "helo": self.helo, "action": self.action,
            "rules": [dict(r) for r in self.rules], "policy_version": self.policy_version,
            "findings": [dict(f) for f in self.findings], "size": self.size, "sha256": self.sha256,
            "history": [h.as_dict() for h in self.history],
        }


@dataclass(frozen=True, slots=True)
class Claim:
    """A release in progress: the message is ``releasing`` under ``token`` until finished or abandoned.

    ``message`` is the record as claimed; backends may leave its history out. ``previous`` is the
    status the claim took it from (``release_uncertain`` only with ``force``).
    """

    id: str
    token: str
    message: HeldMessage
    raw: bytes
    previous: str = "held"


@dataclass(frozen=True, slots=True)
class Filter:
    rule: str | None = None
    sender: str | None = None          # case-insensitive substring of the envelope sender
    recipient: str | None = None       # case-insensitive substring of any held recipient
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    status: str | None = None
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class Purged:
    id: str
    sha256: str
    status: str


@dataclass(frozen=True, slots=True)
class NewHold:
    """The row :meth:`Store.hold` writes, built once by :func:`record_from_decision`."""

    id: str
    held_at: dt.datetime
    mail_from: str
    recipients: tuple[str, ...]
    mail_options: tuple[str, ...]
    client_address: str
    client_name: str
    helo: str
    action: str
    rules: tuple[dict[str, object], ...]
    policy_version: str
    findings: tuple[dict[str, object], ...]
    subject: str
    size: int
    sha256: str


def record_from_decision(decision: Any, raw: bytes, recipients: Sequence[str] | None) -> NewHold:
    """The metadata of one hold, from a :class:`relay.pipeline.Decision` and the received bytes."""
    env = decision.envelope
    verdict = decision.verdict
    held = tuple(recipients) if recipients is not None else tuple(env.rcpt_tos)
    try:
        subject = str(decision.message.subject)
    except AttributeError:
        subject = ""
    return NewHold(
        id=new_id(),
        held_at=utcnow(),
        mail_from=env.mail_from,
        recipients=held,
        mail_options=tuple(env.mail_options),
        client_address=env.client_address,
        client_name=env.client_name,
        helo=env.helo,
        action=str(verdict.action),
        rules=tuple(m.as_dict() for m in verdict.matches),
        policy_version=verdict.policy_version,
        findings=tuple(f.as_dict() for f in decision.findings),
        subject=subject[:998],
        size=len(raw),
        sha256=sha256(raw),
    )


# --------------------------------------------------------------------------- interface


class Store(Protocol):
    """What both backends (``sqlite.py``, ``postgres.py``) do. Every method is a coroutine.

    Errors: :class:`~relay.errors.StoreUnavailable` when the database cannot
    be reached or written, :class:`~relay.errors.NotFound` for an unknown or
    malformed id, :class:`~relay.errors.AlreadyHandled` when the message is no
    longer held.
    """

    url: str
    hold_timeout: float      # seconds a hold may take before it fails (StoreUnavailable -> 451)

    async def hold(self, decision: Any, raw: bytes, recipients: Sequence[str] | None = None) -> str:
        """Store a held message durably (committed, on disk) and return its id."""

    async def get(self, qid: str) -> HeldMessage: ...

    async def raw(self, qid: str) -> bytes:
        """The original bytes; :class:`NotFound` when deleted or purged."""

    async def list(self, flt: Filter = Filter()) -> list[HeldSummary]: ...

    async def note(self, qid: str, actor: str, action: str, note: str = "") -> HeldMessage:
        """Add a history entry (reveal, export) and return the record."""

    async def claim(self, qid: str, actor: str, force: bool = False) -> Claim:
        """held -> releasing, atomically; with ``force`` also release_uncertain -> releasing."""

    async def finish_release(self, claim: Claim, actor: str, note: str) -> HeldMessage:
        """releasing (or release_uncertain after the lease) -> released, only under ``claim``'s token."""

    async def abandon_release(self, claim: Claim, actor: str, reason: str) -> HeldMessage:
        """releasing -> held (nothing reached the next hop), recording why in the history."""

    async def mark_uncertain(self, claim: Claim, actor: str, reason: str) -> HeldMessage:
        """releasing -> release_uncertain (the next hop may have it), recording why in the history."""

    async def delete(self, qid: str, actor: str, note: str = "") -> HeldMessage:
        """held or release_uncertain -> deleted; the bytes are removed, the record and hash stay."""

    async def purge(self, older_than: dt.datetime, actor: str) -> list[Purged]:
        """Remove records (and bytes) held before ``older_than``; live claims are kept."""

    async def ping(self, write: bool = False) -> None:
        """Connect (creating or migrating the schema on first use); with ``write``, also write a
        probe row and roll it back. StoreUnavailable if any of it fails."""

    async def count(self, status: str = "held") -> int:
        """How many records have ``status`` (the readiness check's quarantine gauge)."""

    async def check(self) -> list[str]:
        """Integrity problems: rows whose bytes are missing or do not match their hash."""

    async def close(self) -> None: ...

    async def __aenter__(self) -> Store: ...

    async def __aexit__(self, *exc: object) -> None: ...


# --------------------------------------------------------------------------- shared by the backends

SUMMARY_COLUMNS = ("id", "held_at", "status", "mail_from", "recipients", "action", "rules", "size", "sha256", "subject")
MESSAGE_COLUMNS = SUMMARY_COLUMNS + (
    "mail_options", "client_address", "client_name", "helo", "policy_version", "findings",
)


def summary_from_row(row: Mapping[str, Any]) -> HeldSummary:
    """A summary from a row whose JSON columns are already decoded and whose time is a datetime."""
    return HeldSummary(
        id=row["id"], held_at=row["held_at"], status=row["status"], mail_from=row["mail_from"],
        recipients=tuple(row["recipients"]), action=row["action"], rules=tuple(row["rules"]),
        size=int(row["size"]), sha256=row["sha256"], subject=row["subject"],
    )


def message_from_row(row: Mapping[str, Any], history: Sequence[HistoryEntry]) -> HeldMessage:
    return HeldMessage(
        id=row["id"], held_at=row["held_at"], status=row["status"], mail_from=row["mail_from"],
        recipients=tuple(row["recipients"]), mail_options=tuple(row["mail_options"]),
        client_address=row["client_address"], client_name=row["client_name"], helo=row["helo"],
        action=row["action"], rules=tuple(row["rules"]), policy_version=row["policy_version"],
        findings=tuple(row["findings"]), size=int(row["size"]), sha256=row["sha256"],
        subject=row["subject"], history=tuple(history),
    )


PROBE_ID = "probe"  # never a valid id: no reviewer command can reach it, and it is always rolled back
PROBE_INSERT = (
    "INSERT INTO held (id, held_at, status, mail_from, recipients, mail_options, client_address, client_name,"
    " helo, action, rules, policy_version, findings, subject, size, sha256)"
    " VALUES (%s, %s, 'held', '', %s, %s, '', '', '', 'hold', %s, '', %s, '', 5, '')"
)


def probe_values(at: Any, wrap: Any) -> tuple:
    """Parameters of :data:`PROBE_INSERT`: ``at`` in the backend's time type, ``wrap`` its JSON adapter."""
    return (PROBE_ID, at, wrap([]), wrap([]), wrap([]), wrap([]))


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, case-insensitively, wildcards escaped (ESCAPE '\\')."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def claim_note(previous: str) -> str:
    """The history note of a claim taken from ``previous``."""
    if previous == "release_uncertain":
        return "forced over an uncertain release: a duplicate is possible"
    return ""


LOST_CLAIM_SUFFIX = " (too late: the claim had outlived its lease; status left as it was)"


def lost_claim_error(qid: str) -> str:
    return (f"the release claim on {qid} outlived its lease and is no longer ours (the message was released"
            f" again with --force, or deleted); nothing recorded for this release")


def not_held_error(qid: str, status: str) -> str:
    if status == "releasing":
        return f"{qid} is being released by another reviewer right now"
    if status == "release_uncertain":
        return (f"{qid} may already have reached the next hop (release_uncertain; its history says what"
                f" happened); not sent again. Check the next hop's log for it; if it is not there,"
                f" `relay quarantine release --force {qid}` sends it (a duplicate is possible)")
    return f"{qid} was already {status}"
