"""Confidentiality markings (clause 3.1), and Microsoft sensitivity labels.

* ``confidential_marker`` type ``marker``: a marking from
  ``data/confidential.txt`` ("CONFIDENTIAL", "Private and confidential",
  "Commercial in confidence", "OFFICIAL-SENSITIVE", ...) in the subject, the
  body or an extracted document. Confidence says how surely it is a
  *marking* (what the shipped policy holds on is ``high``):

  - ``high``: multi-word markings in any case, single words ("SECRET",
    "RESTRICTED", "CONFIDENTIAL") in capitals, and "confidential" in the
    subject where it labels the subject ("Confidential - staffing",
    "Re: confidential: draft", "Board papers (confidential)");
  - ``medium``: "confidential" in ordinary prose, the sender *saying* it
    ("I'll keep this confidential", "our confidential helpline"), in the body
    or elsewhere in the subject; ``low`` in an attached document (brochures
    and privacy notices promise confidentiality).

  Quoted replies are not read, but a forwarded message is (forwarding
  confidential content is the sender's act). Standard disclaimers ("This
  email and any attachments are confidential and intended solely for...")
  are removed first: they are on every mail and mark nothing. That includes
  the marking lines a disclaimer starts with ("PRIVATE AND CONFIDENTIAL" /
  "This message is private and confidential." just above "If you have
  received this in error..."), and a short paragraph holding only a marking
  right before a disclaimer paragraph. One finding per where, with the count
  and the first marking (lexicon text) as evidence.
* The ``Sensitivity`` header (RFC 2156, set by Outlook) when it says
  ``Company-Confidential`` (high) or ``Private`` (medium): type ``marker``.
* ``confidential_marker`` type ``sensitivity_label``: the ``msip_labels``
  header that Microsoft Purview / Azure Information Protection adds
  (``MSIP_Label_<guid>_Name=Confidential; MSIP_Label_<guid>_Enabled=true;
  ...``). Each enabled label is reported with its name as evidence, except
  labels that mark nothing (``ignore_labels``: Public, General, ...). A label
  that says confidential or higher (its name holds "confidential", "secret",
  "restricted", "sensitive" or "strictly private": "Highly Confidential",
  "Confidential\\Recipients Only", "OFFICIAL-SENSITIVE") is ``high``; any other
  ("Internal", "Staff only") is ``medium``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from relay.findings import Confidence, Finding
from relay.scanners import ScanContext
from relay.scanners.data import load_lexicon
from relay.scanners.text import (OwnChunk, PhraseMatcher, flatten, fold, merge_same_place, off_loop, own_chunks,
                                 own_text, strip_disclaimers)

_LEXICON = load_lexicon("confidential.txt")
_PROSE = frozenset(_LEXICON.get("prose", ()))
_MATCHER = PhraseMatcher({"phrase": _LEXICON.get("phrase", ()), "upper": _LEXICON.get("upper", ()),
                          "prose": _PROSE})

_MSIP = re.compile(r"MSIP_Label_(?P<guid>[0-9a-fA-F-]{8,40})_(?P<key>[A-Za-z]+)\s*=\s*(?P<value>[^;]*)")
DEFAULT_IGNORED_LABELS = ("public", "general", "non-business", "non business", "personal", "unrestricted",
                          "official", "not restricted", "unclassified")
# A label that says "confidential or higher"; other labels ("Internal") are a medium sign.
_HIGH_LABEL = re.compile(r"confidential|secret|restricted|sensitive|strictly private", re.I)
# "confidential" in ordinary case: a fair sign in the sender's body, a weak one in a
# document (brochures and privacy notices promise confidentiality); in the subject it is
# a marking when it labels the subject (see _labels_subject).
_PROSE_LEVEL = {"header": Confidence.MEDIUM, "body": Confidence.MEDIUM, "attachment": Confidence.LOW}
_SENSITIVITY = {"company-confidential": Confidence.HIGH, "private": Confidence.MEDIUM}
# Punctuation that sets a word off as a label in a subject: "Confidential - x", "x (confidential)".
_LABEL_BEFORE = frozenset(":-[(|*/")
_LABEL_AFTER = frozenset(":-])|*/")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")
_HEADING_WORDS = 8   # a paragraph this short holding a marking, right above a disclaimer, is its heading


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
                    level = Confidence.HIGH if _HIGH_LABEL.search(name) else Confidence.MEDIUM
                    findings.append(Finding("confidential_marker", "sensitivity_label", level, 1,
                                            "header msip_labels", name[:60]))
        return findings

    def _markers(self, ctx: ScanContext) -> list[Finding]:
        findings: list[Finding] = []
        rechecked: set[str] = set()
        for chunk in own_chunks(ctx, keep_forwarded=True):
            matches = _MATCHER.find(chunk.low)
            if not matches:
                continue
            if chunk.source != "body":
                findings.extend(_finding(chunk, matches))
            elif chunk.where not in rechecked:
                # Rare: a marking survived in the body. Read the body again with every
                # disclaimer block cut whole (with its heading lines) before counting it.
                rechecked.add(chunk.where)
                for body in _bodies_without_disclaimers(ctx, chunk.where):
                    findings.extend(_finding(body, _MATCHER.find(body.low)))
        return merge_same_place(findings)


def _finding(chunk: OwnChunk, matches) -> list[Finding]:
    """One finding for the markings ``matches`` found in ``chunk`` (none when none counts)."""
    count, best, first = 0, Confidence.LOW, ""
    for m in matches:
        original = chunk.flat[m.start:m.end]
        if m.label == "phrase" or original.isupper():
            level = Confidence.HIGH
        elif m.phrase in _PROSE:
            level = _PROSE_LEVEL[chunk.source]
            if chunk.source == "header" and _labels_subject(chunk.flat, m.start, m.end):
                level = Confidence.HIGH
        else:
            continue  # an [upper] word in ordinary case: "restricted access"
        count += 1
        best = max(best, level)
        first = first or m.phrase
    if not count:
        return []
    return [Finding("confidential_marker", "marker", best, count, chunk.where, f'"{first[:40]}"', chunk.protected)]


def _labels_subject(flat: str, start: int, end: int) -> bool:
    """Whether the word at ``flat[start:end]`` labels the subject: it opens it, or punctuation
    sets it off ("Re: confidential - x", "x (confidential)"), rather than running in a sentence."""
    before = flat[:start].rstrip()
    after = flat[end:].lstrip()
    return not before or before[-1] in _LABEL_BEFORE or (bool(after) and after[0] in _LABEL_AFTER)


def _bodies_without_disclaimers(ctx: ScanContext, where: str) -> list[OwnChunk]:
    """The body chunks at ``where`` as the sender's words with disclaimer blocks cut whole."""
    out = []
    for chunk in ctx.extraction.chunks:
        if chunk.source == "body" and chunk.where == where and chunk.text:
            flat = flatten(without_disclaimers(own_text(chunk.text, keep_forwarded=True, keep_disclaimers=True)))
            if flat:
                out.append(OwnChunk(chunk.where, chunk.source, chunk.protected, flat, fold(flat)))
    return out


def without_disclaimers(text: str) -> str:
    """``text`` without its disclaimer paragraphs (``text.strip_disclaimers``), and without the
    marking lines a disclaimer starts with.

    ``strip_disclaimers`` keeps the lines above a disclaimer's first strong cue (they may be
    the sender's sign-off); lines there that hold a marking, right above the cue, are the
    disclaimer's own heading ("PRIVATE AND CONFIDENTIAL", "*** PRIVILEGED & CONFIDENTIAL ***",
    "This message is private and confidential."), and so is a short paragraph holding a
    marking right before a disclaimer paragraph.
    """
    paras = _PARAGRAPHS.split(text)
    kept: list[str | None] = []
    for para in paras:
        own = strip_disclaimers(para)
        if own == para:
            kept.append(para)
            continue
        lines = own.split("\n") if own.strip() else []
        while lines and (not lines[-1].strip() or _has_marking(lines[-1])):
            lines.pop()
        kept.append("\n".join(lines) if lines else None)     # None: a disclaimer paragraph
        # the paragraph just above a disclaimer that starts here: its heading when short and marked
        above = len(kept) - 2
        if not lines and above >= 0 and kept[above] is not None and _is_heading(kept[above]):
            kept[above] = ""
    return "\n\n".join(p for p in kept if p)


def _has_marking(line: str) -> bool:
    return bool(_MATCHER.find(fold(flatten(line))))


def _is_heading(para: str) -> bool:
    return len(para.split()) <= _HEADING_WORDS and _has_marking(para)


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
