"""What the conditions look at for one message: findings by kind and lazily computed facts.

One :class:`EvalContext` is built per ``Policy.evaluate`` call. Findings are
grouped by kind once, so a finding test only walks the findings of its own
kinds; every envelope or message fact is computed the first time a rule asks
for it and then reused by the other rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from relay.envelope import Envelope, domain_of
from relay.findings import Finding
from relay.message import ParsedMessage
from relay.organisation import Organisation

_ENCRYPTED_TYPES = ("multipart/encrypted", "application/pgp-encrypted")
_PKCS7 = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_UNSET = object()
# An address as it appears in To/Cc; the stdlib address parser is ~100x slower
# and a count of visible addresses does not need display names.
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def _clean_address(address: str) -> str:
    return address.strip().strip("<>").lower()


class EvalContext:
    __slots__ = (
        "envelope", "message", "findings", "organisation", "by_kind", "_domains", "_suffixes", "_group_of",
        "_external", "_internal", "_lists", "_group", "_visible", "_encrypted", "_signed",
    )

    def __init__(self, envelope: Envelope, message: ParsedMessage, findings: Sequence[Finding],
                 organisation: Organisation, domains: frozenset[str] | None = None,
                 suffixes: tuple[str, ...] | None = None, group_of=None) -> None:
        self.envelope = envelope
        self.message = message
        self.findings = findings
        self.organisation = organisation
        # the Policy passes these precomputed; derived here otherwise
        self._domains = frozenset(organisation.internal_domains) if domains is None else domains
        self._suffixes = tuple("." + d for d in organisation.internal_domains) if suffixes is None else suffixes
        self._group_of = group_of or organisation.group_of
        by_kind: dict[str, list[Finding]] = {}
        for f in findings:
            bucket = by_kind.get(f.kind)
            if bucket is None:
                by_kind[f.kind] = [f]
            else:
                bucket.append(f)
        self.by_kind = by_kind
        self._external = self._internal = self._lists = None
        self._group = self._visible = self._encrypted = self._signed = _UNSET

    # ------------------------------------------------------------ recipients

    def is_internal(self, address: str) -> bool:
        """Same answer as ``Organisation.is_internal``, with the domain suffixes precomputed."""
        domain = domain_of(address)
        return domain in self._domains or domain.endswith(self._suffixes)

    def _split(self) -> None:
        external, internal = [], []
        for rcpt in self.envelope.rcpt_tos:
            (internal if self.is_internal(rcpt) else external).append(rcpt)
        self._external, self._internal = tuple(external), tuple(internal)

    @property
    def external(self) -> tuple[str, ...]:
        """Envelope recipients outside the organisation's domains."""
        if self._external is None:
            self._split()
        return self._external

    @property
    def internal(self) -> tuple[str, ...]:
        if self._internal is None:
            self._split()
        return self._internal

    @property
    def lists(self) -> tuple[str, ...]:
        """Envelope recipients that are distribution lists named in the policy."""
        if self._lists is None:
            org = self.organisation
            self._lists = tuple(r for r in self.envelope.rcpt_tos if org.is_list(r))
        return self._lists

    # ------------------------------------------------------------ sender

    @property
    def sender_group(self) -> str:
        """The sender's group in the organisation, ``"none"`` when it is in none."""
        if self._group is _UNSET:
            sender = self.envelope.mail_from
            self._group = (self._group_of(sender) if sender else None) or "none"
        return self._group

    @property
    def sender(self) -> str:
        return _clean_address(self.envelope.mail_from)

    # ------------------------------------------------------------ message

    @property
    def visible(self) -> int:
        """How many distinct external addresses are visible in To and Cc."""
        if self._visible is _UNSET:
            text = " ".join(self.message.header_all("To") + self.message.header_all("Cc"))
            seen = {a for a in map(str.lower, _ADDRESS.findall(text)) if not self.is_internal(a)}
            self._visible = len(seen)
        return self._visible

    def visible_at_least(self, need: int) -> bool:
        """``visible >= need``, without parsing To/Cc when they hold fewer than ``need`` '@' signs."""
        if self._visible is _UNSET:
            ats = sum(v.count("@") for k, v in self.message.headers if k.lower() in ("to", "cc"))
            if ats < need:
                return False
        return self.visible >= need

    @property
    def encrypted(self) -> bool:
        if self._encrypted is _UNSET:
            self._encrypted = "encrypted_message" in self.by_kind or _root_is(self.message, "enveloped-data")
        return self._encrypted

    @property
    def signed(self) -> bool:
        if self._signed is _UNSET:
            self._signed = "signed_message" in self.by_kind or _root_is(self.message, "signed-data")
        return self._signed

    def scope(self, scope: str) -> tuple[str, ...] | None:
        """The recipients a rule with ``scope`` applies to; None means every recipient."""
        if scope == "all":
            return None
        if scope == "external":
            return self.external
        if scope == "internal":
            return self.internal
        return self.lists


def _root_is(message: ParsedMessage, smime_type: str) -> bool:
    ctype = message.root.content_type
    if smime_type == "enveloped-data" and ctype in _ENCRYPTED_TYPES:
        return True
    if smime_type == "signed-data" and ctype == "multipart/signed":
        return True
    if ctype in _PKCS7:
        # only an explicit smime-type counts; without one the protection scanner decides
        return smime_type in (message.root.header("Content-Type") or "").lower()
    return False
