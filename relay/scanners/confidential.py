"""Confidentiality markings (clause 3.1), and Microsoft sensitivity labels.

* ``confidential_marker`` type ``marker``: a marking from
  ``data/confidential.txt`` ("CONFIDENTIAL", "Private and confidential",
  "Commercial in confidence", "OFFICIAL-SENSITIVE", ...) in the subject, the
  body or an extracted document. Multi-word markings count in any case;
  single words ("SECRET", "RESTRICTED") only in capitals; "confidential" in
  ordinary case is a medium-confidence sign (high in the subject, low in an
  attached document). Quoted
  replies are not read, but a forwarded message is (forwarding confidential
  content is the sender's act). Standard disclaimers ("This email and any
  attachments are confidential and intended solely for...") are removed
  first: they are on every mail and mark nothing. One finding per where,
  with the count and the first marking (lexicon text) as evidence.
* The ``Sensitivity`` header (RFC 2156, set by Outlook) when it says
  ``Company-Confidential`` or ``Private``: type ``marker``.
* ``confidential_marker`` type ``sensitivity_label``: the ``msip_labels``
  header that Microsoft Purview / Azure Information Protection adds
  (``MSIP_Label_<guid>_Name=Confidential; MSIP_Label_<guid>_Enabled=true;
  ...``). Each enabled label is reported with its name as evidence, except
  labels that mark nothing (``ignore_labels``: Public, General, ...).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from relay.findings import Confidence, Finding
from relay.scanners import ScanContext
from relay.scanners.data import load_lexicon
from relay.scanners.text import PhraseMatcher, merge_same_place, off_loop, own_chunks

_LEXICON = load_lexicon("confidential.txt")
_PROSE = frozenset(_LEXICON.get("prose", ()))
_MATCHER = PhraseMatcher({"phrase": _LEXICON.get("phrase", ()), "upper": _LEXICON.get("upper", ()),
                          "prose": _PROSE})

_MSIP = re.compile(r"MSIP_Label_(?P<guid>[0-9a-fA-F-]{8,40})_(?P<key>[A-Za-z]+)\s*=\s*(?P<value>[^;]*)")
DEFAULT_IGNORED_LABELS = ("public", "general", "non-business", "non business", "personal", "unrestricted",
                          "official", "not restricted", "unclassified")
# "confidential" in ordinary case: a clear sign in the subject, a fair one in the sender's
# body, a weak one in a document (brochures and privacy notices promise confidentiality).
_PROSE_LEVEL = {"header": Confidence.HIGH, "body": Confidence.MEDIUM, "attachment": Confidence.LOW}
_SENSITIVITY = {"company-confidential": Confidence.HIGH, "private": Confidence.MEDIUM}


class ConfidentialScanner:
    name = "confidential"

    def __init__(self, ignore_labels: Sequence[str] = DEFAULT_IGNORED_LABELS) -> None:
        self.ignore_labels = frozenset(label.strip().lower() for label in ignore_labels)

    async def scan(self, ctx: ScanContext) -> Sequence[Finding]:
        return await off_loop(self._markers, ctx) + self._labels(ctx)

    def scan_sync(self, ctx: ScanContext) -> list[Finding]:
        return self._markers(ctx) + self._labels(ctx)

    def _labels(self, ctx: ScanContext) -> list[Finding]:
        """The Sensitivity header and Microsoft sensitivity labels."""
        findings: list[Finding] = []
        for value in ctx.message.header_all("Sensitivity"):
            level = _SENSITIVITY.get(value.strip().lower())
            if level is not None:
                findings.append(Finding("confidential_marker", "marker", level, 1, "header Sensitivity",
                                        value.strip()[:40]))
        for value in ctx.message.header_all("msip_labels"):
            for name in sensitivity_labels(value):
                if name.strip().lower() not in self.ignore_labels:
                    findings.append(Finding("confidential_marker", "sensitivity_label", Confidence.HIGH, 1,
                                            "header msip_labels", name[:60]))
        return findings

    def _markers(self, ctx: ScanContext) -> list[Finding]:
        findings: list[Finding] = []
        for chunk in own_chunks(ctx, keep_forwarded=True):
            count, best, first = 0, Confidence.LOW, ""
            for m in _MATCHER.find(chunk.low):
                original = chunk.flat[m.start:m.end]
                if m.label == "phrase" or original.isupper():
                    level = Confidence.HIGH
                elif m.phrase in _PROSE:
                    level = _PROSE_LEVEL[chunk.source]
                else:
                    continue  # an [upper] word in ordinary case: "restricted access"
                count += 1
                best = max(best, level)
                first = first or m.phrase
            if count:
                findings.append(Finding("confidential_marker", "marker", best, count, chunk.where,
                                        f'"{first[:40]}"', chunk.protected))
        return merge_same_place(findings)


def sensitivity_labels(value: str) -> list[str]:
    """Names of the enabled labels in an ``msip_labels`` header value (in order, distinct)."""
    labels: dict[str, dict[str, str]] = {}
    for m in _MSIP.finditer(" ".join(value.split())):
        labels.setdefault(m.group("guid").lower(), {})[m.group("key").lower()] = m.group("value").strip()
    names: dict[str, None] = {}
    for fields in labels.values():
        name = fields.get("name", "")
        if name and fields.get("enabled", "true").lower() != "false":
            names.setdefault(name, None)
    return list(names)
