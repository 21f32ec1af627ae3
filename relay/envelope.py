"""The SMTP envelope of one transaction, as the core sees it (no reply codes here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Envelope:
    mail_from: str                      # "" for the null sender <>
    rcpt_tos: tuple[str, ...]
    client_address: str = ""            # the original client (XFORWARD ADDR when given)
    client_name: str = ""               # reverse name (XFORWARD NAME when given)
    helo: str = ""                      # HELO/EHLO name (XFORWARD HELO when given)
    mail_options: tuple[str, ...] = ()  # ESMTP MAIL parameters, e.g. ("BODY=8BITMIME", "SMTPUTF8")
    smtputf8: bool = False

    @property
    def sender_domain(self) -> str:
        return domain_of(self.mail_from)


def domain_of(address: str) -> str:
    """Lower-case domain of an address, '' when there is none."""
    _, _, domain = address.rpartition("@")
    return domain.strip().strip(">").lower() if "@" in address else ""
