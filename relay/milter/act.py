"""The milter front's act stage: one verdict -> milter actions and the final reply.

How each verdict maps (``deploy/postfix/milter.md`` says the same to operators):

=================  ==========================================================
verdict            what the MTA is told at end of body
=================  ==========================================================
reject (any rcpt)  ``SMFIR_REPLYCODE 550 5.7.1 <reason> [rule <id>, clause <n>]``
tempfail (any)     ``SMFIR_REPLYCODE 451 4.7.1 <reason> [rule ..., clause ...]``
hold (all rcpts)   the message is stored in the relay's quarantine, *then*
                   ``SMFIR_DISCARD`` (the client hears the MTA's 250); a failed
                   store write answers ``451 4.3.0`` instead, so nothing is lost
hold (some)        stored for the held recipients, then ``SMFIR_DELRCPT`` for
                   each of them; the others get the tagged copy (below)
accept / tag       forged verdict fields removed (``SMFIR_CHGHEADER`` with an
                   empty value), the Subject prefixed (``SMFIR_CHGHEADER``),
                   ``X-Policy-Action``/``X-Policy-Rules`` and the rule's extra
                   headers inserted on top (``SMFIR_INSHEADER``), then the
                   DKIM signature inserted on top of those, then ``SMFIR_CONTINUE``
past the deadline  ``SMFIR_REPLYCODE`` :data:`relay.replies.DEADLINE_PASSED` (``451 4.3.0``), sent by
                   the server when deciding and acting outlast
                   ``server.decision_deadline``
=================  ==========================================================

Why discard + our own quarantine rather than ``SMFIR_QUARANTINE`` (the
MTA's hold queue): held mail from both fronts then lives in one store with one
review workflow (``relay quarantine list|show|release|delete``), one audit
history, and release through ``relay.upstream.deliver`` to ``settings.upstream``.
The MTA's hold queue has no verdict, no findings and no per-recipient hold.
Ordering keeps invariant 2: ``store.hold`` returns only once the write is
durable, and only then is ``SMFIR_DISCARD`` (or ``SMFIR_DELRCPT``) sent.

The DKIM signature is computed over the message as it will leave the MTA:
``tagging.tag`` applied to the received bytes gives exactly the header section
the milter edits produce, and ``Signer.sign_headers`` signs that.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from relay import replies
from relay import tagging
from relay.config import Settings
from relay.envelope import Envelope
from relay.errors import StoreError
from relay.milter import protocol as p
from relay.replies import Reply
from relay.verdict import Action


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What to send at end of body, and what the decision event says about it."""

    packets: tuple[bytes, ...]           # modification actions, then exactly one final response
    reply: Reply | None = None           # our SMTP reply, when we gave one (else the MTA's own)
    quarantine_id: str | None = None
    recipients: dict[str, list[str]] | None = None
    error: str = ""




def refuse(reply: Reply, **fields) -> Outcome:
    return Outcome((p.encode_replycode(str(reply)),), reply, **fields)


def _value(value: str, leading_space: bool) -> str:
    """A header value to send: with its leading space if the MTA keeps ours as given."""
    return " " + value if leading_space and value else value


def header_packets(raw: bytes, verdict, settings: Settings, leading_space: bool) -> list[bytes]:
    """The tagging edits (``tagging.header_edits``) as milter packets, in an order that
    keeps every index right: deletions (highest index first), changes, insertions."""
    edits = tagging.header_edits(raw, verdict, settings)
    out = [p.encode_chgheader(index, name, "") for name, index in edits.delete]
    out += [p.encode_chgheader(index, name, _value(value, leading_space)) for name, index, value in edits.change]
    out += [p.encode_insheader(i, name, _value(value, leading_space)) for i, (name, value) in enumerate(edits.insert)]
    return out


async def act(decision, envelope: Envelope, raw: bytes, recipients: Sequence[tuple[str, bytes]],
              settings: Settings, *, store=None, signer=None, leading_space: bool = True) -> Outcome:
    """Map ``decision`` onto milter actions (see the module docstring).

    ``recipients`` pairs each envelope recipient (as the pipeline saw it) with
    the bytes the MTA sent in RCPT, which ``SMFIR_DELRCPT`` must repeat.
    """
    route = decision.verdict.route(envelope.rcpt_tos)
    if route.worst >= Action.TEMPFAIL:
        return refuse(replies.refusal(decision.verdict, route.worst))
    forward, hold, split = route.forward, route.hold, route.split
    packets: list[bytes] = []
    quarantine_id = None
    if hold:
        if store is None:
            return refuse(replies.QUARANTINE_NOT_CONFIGURED, recipients=split, error="no quarantine")
        try:
            quarantine_id = await store.hold(decision.for_recipients(hold), raw)
        except StoreError as exc:
            return refuse(replies.QUARANTINE_UNAVAILABLE, recipients=split, error=f"store: {type(exc).__name__}")
        if not forward:
            return Outcome((p.encode_discard(),), replies.held(quarantine_id), quarantine_id, split)
        held_set = set(hold)
        packets += [p.encode_delrcpt(wire) for rcpt, wire in recipients if rcpt in held_set]
    verdict = route.for_forwarded(decision.verdict)   # what happened to the copy's own recipients
    packets += header_packets(raw, verdict, settings, leading_space)
    if signer is not None:
        out = tagging.tag(raw, verdict, settings)
        signatures = await asyncio.to_thread(signer.sign_headers, out, envelope.mail_from,
                                              tagging.owned_names(settings, verdict))
        for name, value in reversed(signatures):       # the first signature ends up on top
            packets.append(p.encode_insheader(0, name, _value(value, leading_space)))
    packets.append(p.encode_continue())
    return Outcome(tuple(packets), None, quarantine_id, split)
