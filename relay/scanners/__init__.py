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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from relay.envelope import Envelope
from relay.extract import Extraction
from relay.findings import Finding
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


def build_scanners(settings: Settings) -> list[Scanner]:
    """The scanners the relay runs, in order."""
    return []
