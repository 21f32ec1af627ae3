"""Findings: the facts scanners report, and the one registry of their names.

A scanner names facts; the policy judges them (Rspamd's symbols). A finding
never carries the matched value: ``evidence`` is already redacted by the
scanner (``AB •• •• •• C``), and ``where`` says where it was found
(``body``, ``header Subject``, ``part 2 "invoice.pdf"``,
``part 2 "docs.zip" > "a.exe"``).

``KINDS`` is the registry: every kind a scanner may report, with a one-line
description. The policy loader rejects kinds that are not here, and a test
checks that each kind is documented in ``policies/README.md``. ``TYPES`` lists
the known types of the kinds whose types are a closed set (the loader checks
``type:`` tests against it); kinds not in ``TYPES`` have open types (a
signature name, a scanner name).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Confidence(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    type: str = ""
    confidence: Confidence = Confidence.HIGH
    count: int = 1
    where: str = "message"
    evidence: str = ""
    protected: bool = False  # found only inside content that needs a key to open

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "type": self.type,
            "confidence": str(self.confidence),
            "count": self.count,
            "where": self.where,
            "evidence": self.evidence,
            "protected": self.protected,
        }


KINDS: dict[str, str] = {
    # scanners that could not answer
    "scanner_unavailable": "A scanner or the service behind it (type: scanner name) failed, timed out or answered garbage.",
    # parsing and bounds (invariants 4 and 5)
    "malformed": "The message or a part could not be fully understood (type says how: bad_base64, broken_boundary, ...).",
    "limit_exceeded": "A parsing or scanning bound was reached (type names the setting, e.g. max_mime_depth, or clamav:<limit> for ClamAV's own).",
    "extraction_failed": "Text could not be extracted from a document (type: document type).",
    # clause 5.1: attachments
    "malware": "ClamAV found a signature (type: signature name).",
    "executable": "An executable or library (type: pe, elf, macho, msi).",
    "script": "A script or shortcut (type: js, vbs, ps1, hta, bat, cmd, lnk, jar, wsf, sh).",
    "disk_image": "A disk image (type: iso, img, vhd, vhdx, dmg).",
    "macro": "An Office document with macros (type: vba, xlm).",
    "dde": "An Office document with DDE fields.",
    "type_mismatch": "A declared type or file extension that lies about the real type (type: the real type).",
    # clauses 5.1 and 5.3: protection
    "encrypted_content": "A document or archive member that needs a password to open (type: office, pdf, zip, 7z, rar, pgp).",
    "encrypted_message": "The message is encrypted end to end (type: smime, pgp).",
    "signed_message": "The message is signed but not encrypted (type: smime, pgp).",
    "weak_protection": "Protection that does not keep the content secret (type: pdf_owner_password, office_default_password).",
    # clauses 3.1, 5.2, 5.3: personal and confidential data
    "personal_data": "Personal data of one type (type: uk_nino, nhs_number, payment_card, ...).",
    "special_category": "GDPR Art. 9 special category data about an identified person (type: health, religion, ...).",
    "bulk_contacts": "Contact details of many people (type: email_address, phone_number, postal_address).",
    "credential": "A secret written out (type: password, private_key, api_token).",
    "confidential_marker": "A confidentiality marking (type: marker, sensitivity_label).",
    # clauses 3.1.2, 3.2-3.4: conduct
    "abusive_language": "Abusive, intimidating or disparaging language (type: abusive, intimidating, disparaging).",
    # clause 3.5: recipients
    "visible_recipients": "Many external addresses visible in To/Cc instead of Bcc (count: how many).",
    "distribution_list": "A recipient is a distribution list named in the policy.",
    # clauses 4.1, 4.2: business mail
    "contract_language": "Language that makes or accepts offers, orders, quotes, terms or agreements.",
    "unworded_figure": "A money amount written in figures only, without the amount in words (type: currency).",
    "figure_mismatch": "A money amount whose words do not match its figures (type: currency).",
    # clause 5.4
    "desktop_client": "Sent from a desktop mail client (type: outlook, thunderbird, apple_mail, ...).",
}

PERSONAL_DATA_TYPES = (
    "uk_nino", "nhs_number", "payment_card", "iban", "uk_bank_account", "uk_passport",
    "uk_driving_licence", "uk_utr", "date_of_birth", "phone_number", "email_address", "postal_address",
)

TYPES: dict[str, tuple[str, ...]] = {
    "executable": ("pe", "elf", "macho", "msi"),
    "script": ("js", "vbs", "ps1", "hta", "bat", "cmd", "lnk", "jar", "wsf", "sh"),
    "disk_image": ("iso", "img", "vhd", "vhdx", "dmg"),
    "macro": ("vba", "xlm"),
    "encrypted_message": ("smime", "pgp"),
    "signed_message": ("smime", "pgp"),
    "weak_protection": ("pdf_owner_password", "office_default_password"),
    "personal_data": PERSONAL_DATA_TYPES,  # plus custom:<name> from the policy's own detectors
    "special_category": ("health", "ethnicity", "religion", "sexual_orientation", "trade_union",
                         "biometric", "genetic", "political", "criminal"),
    "bulk_contacts": ("email_address", "phone_number", "postal_address"),
    "credential": ("password", "private_key", "api_token"),
    "confidential_marker": ("marker", "sensitivity_label"),
    "abusive_language": ("abusive", "intimidating", "disparaging"),
    "contract_language": ("offer", "acceptance", "order", "quote", "terms", "agreement"),
    "unworded_figure": ("gbp", "usd", "eur"),
    "figure_mismatch": ("gbp", "usd", "eur"),
    "desktop_client": ("outlook", "thunderbird", "apple_mail", "other", "mobile"),
}


def is_known(kind: str) -> bool:
    return kind in KINDS
