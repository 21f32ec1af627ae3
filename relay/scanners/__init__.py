"""Scanners: each finds facts about a message and returns findings, nothing else.

A scanner never chooses an action, never knows SMTP, never changes the message.
It gets a :class:`ScanContext` and returns a sequence of :class:`Finding`.
Blocking or CPU-heavy work runs off the event loop (``asyncio.to_thread`` or a
bounded executor). An exception or time-out in one scanner becomes a
``scanner_unavailable`` finding named after it (the pipeline does that); the
others go on.

``build_scanners(settings)`` returns the ordered list the relay runs.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from relay.envelope import Envelope
from relay.extract import Extraction
from relay.findings import KINDS, Finding
from relay.message import ParsedMessage
from relay.organisation import Organisation

if TYPE_CHECKING:
    from relay.config import Settings


@dataclass(frozen=True, slots=True)
class ScanContext:
    message: ParsedMessage
    envelope: Envelope
    organisation: Organisation
    extraction: Extraction               # text of the body and documents, extracted once
    custom_detectors: tuple = ()         # relay.policy.schema.CustomDetector from the policy file


class Scanner(Protocol):
    name: str

    async def scan(self, ctx: ScanContext) -> Sequence[Finding]: ...

    # Optional: ``scan_sync(ctx)``, the same findings computed synchronously, for a scanner whose
    # work is CPU only (no I/O). The pipeline runs all such scans of a message together: inline
    # for a small message, else one after another in one worker thread (one thread hop, not one
    # per scanner: each hop costs more CPU than a small scan).


# The scanners the relay runs, in order, with the finding kinds each can report.
# The pipeline skips a scanner when the policy tests none of its kinds (work sized to
# the policy); a scanner's failure (scanner_unavailable) always counts.
SCANNERS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("relay.scanners.antivirus", "AntivirusScanner", frozenset({"malware", "limit_exceeded"})),
    ("relay.scanners.filetypes", "FileTypeScanner",
     frozenset({"executable", "script", "disk_image", "macro", "dde", "type_mismatch"})),
    ("relay.scanners.protection", "ProtectionScanner",
     frozenset({"encrypted_content", "encrypted_message", "signed_message", "weak_protection"})),
    ("relay.scanners.personal_data", "PersonalDataScanner",
     frozenset({"personal_data", "special_category", "bulk_contacts", "credential"})),
    ("relay.scanners.confidential", "ConfidentialScanner", frozenset({"confidential_marker"})),
    ("relay.scanners.language", "LanguageScanner", frozenset({"abusive_language"})),
    ("relay.scanners.recipients", "RecipientsScanner", frozenset({"visible_recipients", "distribution_list"})),
    ("relay.scanners.contracts", "ContractScanner", frozenset({"contract_language"})),
    ("relay.scanners.figures", "FiguresScanner", frozenset({"unworded_figure", "figure_mismatch"})),
    ("relay.scanners.client", "DesktopClientScanner", frozenset({"desktop_client"})),
)

_NEEDS_SETTINGS = {"AntivirusScanner", "FileTypeScanner", "ProtectionScanner"}

# Scanners that read ctx.extraction; when none of them runs, the pipeline does not extract text.
READS_TEXT = frozenset({"PersonalDataScanner", "ConfidentialScanner", "LanguageScanner", "ContractScanner",
                        "FiguresScanner"})


def reads_text(scanner: Scanner) -> bool:
    name = type(scanner).__name__
    return name in READS_TEXT or name not in {cls for _, cls, _ in SCANNERS}


def kinds_of(scanner: Scanner) -> frozenset[str]:
    """The finding kinds ``scanner`` can report (every kind for one not in SCANNERS)."""
    for _, cls_name, kinds in SCANNERS:
        if type(scanner).__name__ == cls_name:
            return kinds
    return frozenset(KINDS)


# Below this size, a message with no attachments is scanned inline: cheaper than a thread hop.
INLINE_BYTES = 256 * 1024


def small(message: ParsedMessage) -> bool:
    """Small text-only mail: scanning it inline costs microseconds, less than a thread hop."""
    return message.size <= INLINE_BYTES and next(message.attachments(), None) is None


async def run_sized(message: ParsedMessage, scan: Callable[[ParsedMessage], list[Finding]]) -> list[Finding]:
    """``scan(message)`` inline for small text-only mail (microseconds), else in a worker thread."""
    if small(message):
        return scan(message)
    return await asyncio.to_thread(scan, message)


def build_scanners(settings: Settings, needed: frozenset[str] | None = None) -> list[Scanner]:
    """The scanners the relay runs, in order; with ``needed``, only those reporting a needed kind."""
    out: list[Scanner] = []
    for module, cls_name, kinds in SCANNERS:
        if needed is not None and kinds.isdisjoint(needed):
            continue
        cls = getattr(importlib.import_module(module), cls_name)
        out.append(cls(settings) if cls_name in _NEEDS_SETTINGS else cls())
    return out
