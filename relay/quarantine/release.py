"""Reviewer actions: release (once), delete, reveal, export, purge; each one logged as a JSON event.

Release sends the ORIGINAL bytes to the next hop with the held envelope
(sender, the recipients the message was held for, its MAIL parameters):

1. **claim**: one atomic update ``held -> releasing`` with a fresh claim token.
   Two reviewers releasing at the same moment: one wins, the other gets
   :class:`~relay.errors.AlreadyHandled`. The bytes are checked against the
   stored SHA-256 before anything is sent.
2. **prepare** the outgoing copy (tagged, DKIM-signed); a failure here (a key
   that cannot be read now) puts it back to ``held`` with ``not sent: <error>``
   in the history and is raised. Then **deliver** through
   :func:`relay.upstream.deliver`, bounded by the delivery budget.
3. **settle**: next hop accepted -> ``released``; next hop refused (any
   answer but 2xx, even to the end of the data) or was down before the data
   went out -> back to ``held`` with the refusal in the history, and the
   :class:`~relay.errors.UpstreamError` is raised for the caller to show;
   the data went out but no answer came back (connection lost, time-out)
   -> ``release_uncertain`` and :class:`ReleaseUncertain` is raised.

The relay never sends a message twice on its own. Where it cannot know
whether the next hop kept the message, the message is left
``release_uncertain`` and a plain release refuses it:

* the next hop's reply to the end of the data was lost (RFC 1047's window:
  the connection dropped or timed out after our final dot);
* the releasing process died, was killed or lost the store between sending
  the data and committing the outcome: its claim stays ``releasing`` until the
  lease (:func:`relay.quarantine.lease_for`) runs out and then becomes
  ``release_uncertain`` (a process that died before sending anything ends
  there too: from the store nothing tells the two apart). A live release is
  never mistaken for a dead one: its delivery is abandoned at 80 % of the lease.

The reviewer checks the next hop's log (the history says what happened) and
either deletes the message or runs ``release --force``, which sends it again
(a duplicate is possible) and logs ``quarantine.release_forced``. A
connection lost between our ``DATA`` command and the next hop's 354 also
counts as uncertain: from our side of the socket it looks the same. An
interrupted release (Ctrl-C) is treated like a crash.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from relay.errors import StoreError, StoreUnavailable, UpstreamError, UpstreamRejected, UpstreamUnavailable
from relay.log import clean
from relay.quarantine import store as st


@dataclass(slots=True)
class Progress:
    """How far one delivery got; the deliverer sets ``data_sent`` just before the message data goes out."""

    data_sent: bool = False


# deliver(settings, mail_from, rcpt_tos, data, mail_options, progress) -> the next hop's reply
Deliver = Callable[[Any, str, Sequence[str], bytes, Sequence[str], Progress], Awaitable[Any]]


class ReleaseUncertain(UpstreamUnavailable):
    """The data went out but the next hop's answer did not come back: it may have the message.

    Here rather than in :mod:`relay.errors` because only this module raises it and only the
    quarantine command catches it (as an :class:`UpstreamError` for every other caller).
    """

_SETTLE_ATTEMPTS = 3
MIN_DELIVERY_BUDGET = 5.0   # only matters for the very short leases tests use; real leases are >= 60 s


def default_reviewer() -> str:
    """$USER, or the login name, or ``unknown``."""
    name = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "unknown"
    return clean(name, 64)


def _event(event: str, reviewer: str, qid: str, sha: str, **extra: Any) -> None:
    # A logger per event: the CLI configures logging per command, and a cached one would keep an old stream.
    structlog.get_logger("relay.quarantine").info(event, reviewer=clean(reviewer, 64), id=qid, sha256=sha,
             at=dt.datetime.now(dt.timezone.utc).isoformat(), **extra)


@dataclass(frozen=True, slots=True)
class Released:
    message: st.HeldMessage
    reply: str          # the next hop's answer, as text


async def _upstream_deliver(settings: Any, mail_from: str, rcpt_tos: Sequence[str], data: bytes,
                            mail_options: Sequence[str], progress: Progress) -> Any:
    from relay import upstream  # imported on use: the SMTP client is only needed to release

    def data_sent() -> None:           # from the DATA command on, a lost answer leaves it uncertain
        progress.data_sent = True

    return await upstream.deliver(settings, mail_from, list(rcpt_tos), data, mail_options=tuple(mail_options),
                                  on_data=data_sent)


async def release(store: st.Store, settings: Any, qid: str, reviewer: str, note: str = "",
                  deliver: Deliver | None = None, force: bool = False) -> Released:
    """Send the held message to the next hop, never twice on our own; see the module docstring.

    ``force`` also releases a ``release_uncertain`` message (logged as ``quarantine.release_forced``).
    """
    deliver = deliver or _upstream_deliver
    claim = await store.claim(qid, reviewer, force=force)
    msg = claim.message
    if claim.previous == "release_uncertain":
        _event("quarantine.release_forced", reviewer, msg.id, msg.sha256)
    if st.sha256(claim.raw) != msg.sha256:
        await _settle(store.abandon_release, claim, reviewer, "stored bytes do not match their SHA-256; not sent")
        raise StoreError(f"{msg.id}: the stored bytes do not match their SHA-256; nothing was sent")
    try:
        data = await _outgoing(settings, msg, claim.raw)
    except Exception as exc:   # a DKIM key unreadable now, a tagging bug: not sent, back to held
        await _refused(store, claim, reviewer, f"not sent: {type(exc).__name__}")
        raise
    budget = _delivery_budget(store)
    progress = Progress()
    try:
        try:
            async with asyncio.timeout(budget):
                reply = await deliver(settings, msg.mail_from, msg.recipients, data, msg.mail_options, progress)
        except TimeoutError:
            raise UpstreamUnavailable(f"the release took longer than {budget:.0f}s and was abandoned") from None
    except UpstreamRejected as exc:    # an answer, even to the final dot: the next hop did not take it
        await _refused(store, claim, reviewer, _describe_refusal(exc))
        raise
    except Exception as exc:  # noqa: BLE001 - whatever failed, the outcome depends on how far it got
        if not progress.data_sent:
            reason = _describe_refusal(exc) if isinstance(exc, UpstreamError) else f"not sent: {type(exc).__name__}"
            await _refused(store, claim, reviewer, reason)
            raise
        what = clean(str(exc) if isinstance(exc, UpstreamError) else type(exc).__name__, 200)
        reason = f"no answer from the next hop after the message data ({what}): it may have the message; not resent"
        await _settle(store.mark_uncertain, claim, reviewer, reason)
        _event("quarantine.release_uncertain", reviewer, msg.id, msg.sha256, reason=reason)
        raise ReleaseUncertain(reason) from exc
    reply_text = clean(_reply_text(reply), 300)
    done = await _settle(store.finish_release, claim, reviewer, _join(note, f"next hop: {reply_text}"))
    _event("quarantine.release", reviewer, msg.id, msg.sha256, recipients=len(msg.recipients), note=clean(note, 300))
    return Released(done, reply_text)


async def _outgoing(settings: Any, msg: st.HeldMessage, raw: bytes) -> bytes:
    """The released copy, tagged and DKIM-signed exactly like forwarded mail (the stored bytes stay as they are)."""
    if not hasattr(settings, "action_header"):   # a bare settings stand-in (unit tests): send as stored
        return raw
    from relay import dkim
    from relay.verdict import Action, RuleMatch, Verdict

    matches = tuple(RuleMatch(str(r.get("id", "")), str(r.get("clause", "")), Action.HOLD, str(r.get("reason", "")))
                    for r in msg.rules if not r.get("monitor"))
    verdict = Verdict(Action.HOLD, matches, dict.fromkeys(msg.recipients, Action.HOLD), msg.policy_version)
    return await dkim.outgoing(raw, verdict, settings, dkim.Signer.from_settings(settings), msg.mail_from)


async def _refused(store: st.Store, claim: st.Claim, reviewer: str, reason: str) -> None:
    """Nothing reached the next hop (or it said no): back to held, recorded and logged."""
    await _settle(store.abandon_release, claim, reviewer, reason)
    _event("quarantine.release_failed", reviewer, claim.message.id, claim.message.sha256, reason=reason)


def _delivery_budget(store: st.Store) -> float:
    """Time one delivery may take: well inside the claim's lease, so a live release never turns uncertain."""
    lease = float(getattr(store, "lease", 600.0))
    return max(0.8 * lease, MIN_DELIVERY_BUDGET)


async def _settle(op, claim: st.Claim, reviewer: str, note: str) -> st.HeldMessage:
    """Commit the outcome; a store blip is retried a few times (the next hop may already have the mail)."""
    for attempt in range(_SETTLE_ATTEMPTS):
        try:
            return await op(claim, reviewer, note)
        except StoreUnavailable:
            if attempt == _SETTLE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _describe_refusal(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamRejected):
        return clean(f"next hop refused: {exc.code} {exc.message}", 300)
    return clean(f"next hop unavailable: {exc}", 300)


def _reply_text(reply: Any) -> str:
    """``250 2.0.0 Ok: queued as ...`` from a :class:`relay.replies.Reply` (or anything alike)."""
    if reply is None:
        return "accepted"
    code = getattr(reply, "code", None)
    if code is None:
        return str(reply)
    parts = (str(code), str(getattr(reply, "status", "") or ""), str(getattr(reply, "text", "") or ""))
    return " ".join(p for p in parts if p).replace("\n", " / ")


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


async def delete(store: st.Store, qid: str, reviewer: str, note: str = "") -> st.HeldMessage:
    msg = await store.delete(qid, reviewer, note)
    _event("quarantine.delete", reviewer, msg.id, msg.sha256, note=clean(note, 300))
    return msg


async def reveal(store: st.Store, qid: str, reviewer: str) -> tuple[st.HeldMessage, bytes]:
    """The record and bytes for an unmasked view; recorded in the history and logged."""
    raw = await store.raw(qid)
    msg = await store.note(qid, reviewer, "reveal")
    _event("quarantine.reveal", reviewer, msg.id, msg.sha256)
    return msg, raw


async def export(store: st.Store, qid: str, reviewer: str) -> tuple[st.HeldMessage, bytes]:
    """The original bytes for ``relay quarantine export``; recorded and logged like a reveal.
    Bytes that no longer match their SHA-256 are refused (``relay quarantine check`` lists them)."""
    raw = await store.raw(qid)
    msg = await store.note(qid, reviewer, "export")
    if st.sha256(raw) != msg.sha256:
        raise StoreError(f"{msg.id}: the stored bytes do not match their SHA-256; not exported")
    _event("quarantine.export", reviewer, msg.id, msg.sha256)
    return msg, raw


async def purge(store: st.Store, older_than: dt.datetime, reviewer: str) -> list[st.Purged]:
    gone = await store.purge(older_than, reviewer)
    for item in gone:
        _event("quarantine.purge", reviewer, item.id, item.sha256, status=item.status)
    structlog.get_logger("relay.quarantine").info("quarantine.purged", reviewer=clean(reviewer, 64), count=len(gone), older_than=older_than.isoformat())
    return gone
