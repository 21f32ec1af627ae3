"""Tell the (internal) sender that a message was held or rejected, and why.

Sent only when one of the rules that decided the verdict says so
(``RuleMatch.notify_sender``), only for hold and reject, and never to the null
sender (that would be a bounce loop). The notice goes through the next hop
with a null envelope sender (``MAIL FROM:<>``) and ``Auto-Submitted:
auto-generated``. It names the rules' reasons and clauses, the quarantine id,
the original Message-ID and the number of recipients -- no subject, no body,
no recipient addresses, nothing the scanners found: the reasons are written by
the policy author without personal data.

Best effort: a failure to send is logged and reported as ``False``; it never
changes what happens to the message itself.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from typing import Any

import structlog

from relay.errors import UpstreamError
from relay.log import clean
from relay.verdict import Action, RuleMatch

log = structlog.get_logger("relay.quarantine")

_MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,250}>")

Deliver = Callable[..., Awaitable[Any]]


def rules_to_notify(decision: Any) -> tuple[RuleMatch, ...]:
    """The enforced rules behind the verdict's action that ask for a sender notice."""
    verdict = decision.verdict
    if verdict.action not in (Action.HOLD, Action.REJECT) or not decision.envelope.mail_from:
        return ()
    return tuple(m for m in verdict.enforced if m.notify_sender and m.action == verdict.action)


def build_notice(settings: Any, decision: Any, quarantine_id: str | None,
                 rules: Sequence[RuleMatch]) -> bytes:
    """The notice as bytes (CRLF line ends), ready for the next hop."""
    env = decision.envelope
    host = settings.hostname or socket.getfqdn()
    held = decision.verdict.action == Action.HOLD
    original_id = (decision.message.header("Message-ID") or "").strip()
    original_id = original_id if _MESSAGE_ID.fullmatch(original_id) else ""
    n = len(env.rcpt_tos)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"Mail policy <postmaster@{host}>"
    msg["To"] = env.mail_from
    msg["Subject"] = "Your message is held for review" if held else "Your message was not sent"
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=host)
    msg["Auto-Submitted"] = "auto-generated"
    if original_id:
        msg["In-Reply-To"] = original_id
        msg["References"] = original_id
    what = (f"is held for review (quarantine id {quarantine_id}). A reviewer will release or delete it."
            if held else "was rejected and has not been delivered to anyone.")
    lines = [
        f"Your message{' ' + original_id if original_id else ''} to {n} recipient{'s' if n != 1 else ''} {what}",
        "",
        "Why:",
        *(f"  - {clean(m.reason, 500)} [rule {clean(m.rule_id, 80)}, clause {clean(m.clause, 40)}]" for m in rules),
        "",
        "This notice was sent automatically by the mail policy relay. Please do not reply to it;",
        "contact your mail administrators if you think the decision is wrong.",
    ]
    msg.set_content("\n".join(lines) + "\n")
    return msg.as_bytes()


async def notify_sender(settings: Any, decision: Any, quarantine_id: str | None,
                        deliver: Deliver | None = None) -> bool:
    """Send the notice if a deciding rule asks for it; True if the next hop took it."""
    rules = rules_to_notify(decision)
    if not rules:
        return False
    try:
        data = build_notice(settings, decision, quarantine_id, rules)
    except (ValueError, TypeError) as exc:  # an envelope sender that cannot be a header
        log.warning("quarantine.notify_failed", id=quarantine_id, error=type(exc).__name__)
        return False
    if deliver is None:
        from relay import upstream  # imported on use

        deliver = upstream.deliver
    try:
        await deliver(settings, "", [decision.envelope.mail_from], data, mail_options=())
    except UpstreamError as exc:
        log.warning("quarantine.notify_failed", id=quarantine_id, error=clean(str(exc), 200))
        return False
    log.info("quarantine.notify", id=quarantine_id, action=str(decision.verdict.action),
             rules=[m.rule_id for m in rules])
    return True


def schedule(settings: Any, decision: Any, quarantine_id: str | None, rejected_by_policy: bool,
             tasks: set) -> None:
    """Start the sender notice off the reply path (both fronts call this after replying): only for a
    hold or a policy reject, and only when an enforced matching rule asks for it. ``tasks`` keeps a
    reference to the task until it ends."""
    if quarantine_id is None and not rejected_by_policy:
        return
    if not any(m.notify_sender and not m.monitor for m in decision.verdict.matches):
        return
    task = asyncio.get_running_loop().create_task(notify_sender(settings, decision, quarantine_id))
    tasks.add(task)
    task.add_done_callback(tasks.discard)
