"""Every SMTP reply the relay sends, in one table (the only place with reply codes).

The core returns values and raises typed errors; the SMTP edge (``server.py``,
``upstream.py``) turns them into a :class:`Reply` from this module. Every reply
carries an enhanced status code (RFC 2034/3463) except the greeting, the
answers to HELO/EHLO and the 3xx intermediate replies, as RFC 2034 asks:
:func:`enhance` adds one to aiosmtpd's built-in replies, which have none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relay.verdict import Action, Verdict

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")
_LINE = re.compile(r"^(\d{3})([ -])(.*)$", re.S)

# Default enhanced status per reply code (RFC 3463), used for replies that lack one.
DEFAULT_STATUS: dict[int, str] = {
    211: "2.0.0", 214: "2.0.0", 220: "2.0.0", 221: "2.0.0", 250: "2.0.0", 251: "2.1.5", 252: "2.0.0",
    421: "4.3.0", 450: "4.2.0", 451: "4.3.0", 452: "4.3.1", 454: "4.7.0", 455: "4.5.4",
    500: "5.5.2", 501: "5.5.4", 502: "5.5.1", 503: "5.5.1", 504: "5.5.4", 530: "5.7.0", 535: "5.7.8",
    550: "5.0.0", 551: "5.1.6", 552: "5.3.4", 553: "5.1.3", 554: "5.0.0", 555: "5.5.4",
}


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    status: str          # enhanced status code, e.g. "2.0.0"
    text: str            # may hold several lines ("\n"); never personal data of our own making

    def __str__(self) -> str:
        lines = self.text.split("\n") or [""]
        last = len(lines) - 1
        return "\r\n".join(
            f"{self.code}{' ' if i == last else '-'}{self.status} {line}".rstrip() for i, line in enumerate(lines)
        )

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


def reply(code: int, text: str, status: str = "") -> Reply:
    return Reply(code, status or default_status(code), text)


def default_status(code: int) -> str:
    return DEFAULT_STATUS.get(code, f"{code // 100}.0.0")


def from_upstream(code: int, message: str) -> Reply:
    """The next hop's own reply, kept as it said it (its enhanced code, or the default)."""
    lines = [line.rstrip("\r") for line in (message or "").split("\n")] or [""]
    status = ""
    out = []
    for line in lines:
        m = _ENHANCED.match(line)
        if m and int(m.group(1)) == code // 100:
            status = status or line[: m.end()].strip()
            line = line[m.end():]
        out.append(_safe(line))
    return Reply(code, status or default_status(code), "\n".join(out))


def enhance(status: str) -> str:
    """``status`` (one or more reply lines) with an enhanced code on each line that lacks one."""
    out = []
    for line in status.split("\r\n"):
        m = _LINE.match(line)
        if not m or m.group(1).startswith("3") or _ENHANCED.match(m.group(3)):
            out.append(line)
            continue
        code = int(m.group(1))
        out.append(f"{code}{m.group(2)}{default_status(code)} {m.group(3)}".rstrip())
    return "\r\n".join(out)


def _safe(text: str, limit: int = 400) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]", " ", text)
    return text[:limit]


# --------------------------------------------------------------------------- the table

OK = reply(250, "OK")
BYE = reply(221, "Bye")
XFORWARD_OK = reply(250, "OK")

ACCESS_DENIED = reply(554, "Client host not permitted to send through this relay", "5.7.1")
DENIED_SEQUENCE = reply(503, "Client host not permitted to send through this relay; send QUIT", "5.7.1")
TOO_MANY_SESSIONS = reply(421, "Too many concurrent sessions, try again later", "4.7.0")
SHUTTING_DOWN = reply(421, "Service shutting down, try again later", "4.3.2")
TIMEOUT = reply(421, "Timeout exceeded, closing connection", "4.4.2")

SIZE_EXCEEDED = reply(552, "Message size exceeds fixed maximum message size", "5.3.4")
HEADER_EXCEEDED = reply(552, "Message header size exceeds fixed maximum header size", "5.3.4")
BARE_NEWLINE = reply(550, "Bare CR or LF in message data is not allowed: lines must end with CRLF", "5.5.2")
TOO_MANY_RECIPIENTS = reply(452, "Too many recipients", "4.5.3")
NEED_RCPT = reply(503, "Error: need RCPT command", "5.5.1")
DATA_SYNTAX = reply(501, "Syntax: DATA", "5.5.4")
NESTED_MAIL = reply(503, "Error: nested MAIL command", "5.5.1")
BAD_SENDER = reply(501, "Bad sender address syntax: control characters or invalid UTF-8", "5.1.7")
BAD_RECIPIENT = reply(501, "Bad recipient address syntax: control characters or invalid UTF-8", "5.1.3")
AUTH_UNAVAILABLE = reply(502, "AUTH not available", "5.5.1")

XFORWARD_IN_TRANSACTION = reply(503, "Error: XFORWARD not allowed inside a mail transaction", "5.5.1")
XFORWARD_SYNTAX = reply(501, "Syntax: XFORWARD attribute=value...", "5.5.4")

UPSTREAM_UNAVAILABLE = reply(451, "Next hop unavailable, try again later", "4.4.1")
UPSTREAM_LOST = reply(451, "Next hop session lost, try again later", "4.4.2")
QUARANTINE_UNAVAILABLE = reply(451, "Quarantine unavailable, try again later", "4.3.0")
QUARANTINE_NOT_CONFIGURED = reply(451, "Message must be held but no quarantine is configured, try again later", "4.3.0")
INTERNAL_ERROR = reply(451, "Internal error, try again later", "4.3.0")
# Deciding and acting outlasted the milter front's deadline (relay.milter.server.decision_deadline).
DEADLINE_PASSED = reply(451, "Content checks did not finish in time, try again later", "4.3.0")


def rejected(reason: str, rule_id: str, clause: str) -> Reply:
    """``550 5.7.1 <reason> [rule <id>, clause <n>]``: the policy rejected the message."""
    return reply(550, f"{_safe(reason)} [rule {_safe(rule_id)}, clause {_safe(clause)}]", "5.7.1")


def tempfailed(reason: str, rule_id: str, clause: str) -> Reply:
    """``451 4.7.1 <reason> [rule <id>, clause <n>]``: the policy asks the sender to try later."""
    return reply(451, f"{_safe(reason)} [rule {_safe(rule_id)}, clause {_safe(clause)}]", "4.7.1")


def refusal(verdict: Verdict, worst: Action) -> Reply:
    """The reply refusing a whole message that ``verdict`` rejects (``worst`` REJECT) or
    tempfails for some recipient, citing the deciding rule."""
    deciding = verdict.deciding
    reason, rule_id, clause = ((deciding.reason, deciding.rule_id, deciding.clause) if deciding
                               else ("Message refused by policy", "default", "-"))
    return (rejected if worst == Action.REJECT else tempfailed)(reason, rule_id, clause)


def held(quarantine_id: str) -> Reply:
    return reply(250, f"held for review {quarantine_id}", "2.0.0")


def held_and_forwarded(quarantine_id: str, held_count: int, total: int, upstream: Reply) -> Reply:
    return reply(250, f"held for review {quarantine_id} ({held_count} of {total} recipients); "
                      f"forwarded to the others: {upstream.code} {upstream.status} {upstream.text}", "2.0.0")


def upstream_closing(upstream: Reply) -> Reply:
    """The next hop said 421 (closing): the client must not read it as *our* 421."""
    return reply(451, f"Next hop closing: {upstream.text}", "4.4.2")
