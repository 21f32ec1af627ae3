"""Who the message goes to (clause 3.5): distribution lists, and external addresses left visible.

* ``distribution_list``: an envelope recipient, or a To/Cc address, is one of
  the organisation's distribution lists (``organisation.distribution_lists``).
  One finding per list; the evidence is the list's address (an organisational
  address, not a person's).
* ``visible_recipients``: the number of distinct external addresses in the
  To and Cc headers (``count``), reported once the count reaches
  ``min_count`` (default 2: one visible address exposes nobody). The policy
  sets its own threshold with a ``count`` test. Internal addresses never
  count; Bcc'd recipients (in the envelope, not in the headers) never count.
  No address appears in the finding.

Header values arrive with RFC 2047 words already decoded, so a display name
may hold a comma (``Smith, John <j@x>``); only entries with an ``@`` count,
and addresses in angle brackets are collected as well, because the
standard library's strict parser gives up on some ambiguous values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from email.utils import getaddresses

from relay.findings import Confidence, Finding
from relay.scanners import ScanContext

_ANGLE = re.compile(r"<\s*([^<>\s@]+@[^<>\s@]+)\s*>")
_ADDR = re.compile(r"^[^@\s]+@[^@\s]+$")


def header_addresses(values: Iterable[str]) -> list[str]:
    """Distinct addresses (lower case, in order) in address-list header values."""
    seen: dict[str, None] = {}
    for value in values:
        candidates = [addr for _, addr in getaddresses([value])]
        candidates += _ANGLE.findall(value)
        for addr in candidates:
            addr = addr.strip().strip("<>").strip().lower()
            if _ADDR.match(addr):
                seen.setdefault(addr, None)
    return list(seen)


class RecipientsScanner:
    name = "recipients"

    def __init__(self, min_count: int = 2) -> None:
        self.min_count = min_count

    async def scan(self, ctx: ScanContext) -> Sequence[Finding]:
        org = ctx.organisation
        msg = ctx.message
        to_cc = header_addresses(msg.header_all("To") + msg.header_all("Cc"))
        findings: list[Finding] = []

        lists: dict[str, str] = {}
        for rcpt in ctx.envelope.rcpt_tos:
            addr = rcpt.strip().strip("<>").lower()
            if org.is_list(addr):
                lists.setdefault(addr, "envelope")
        for addr in to_cc:
            if org.is_list(addr):
                lists.setdefault(addr, "header To/Cc")
        for addr, where in lists.items():
            findings.append(Finding("distribution_list", "", Confidence.HIGH, 1, where, addr[:120]))

        external = [a for a in to_cc if not org.is_internal(a)]
        if len(external) >= self.min_count:
            domains = len({a.rpartition("@")[2] for a in external})
            findings.append(Finding("visible_recipients", "", Confidence.HIGH, len(external), "header To/Cc",
                                    f"{len(external)} external addresses, {domains} domains"))
        return findings
