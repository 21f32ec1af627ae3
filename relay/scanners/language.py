"""Abusive, intimidating or disparaging language (clauses 3.1.2, 3.2, 3.3, 3.4).

Three curated lexicons, one per category, in ``data/`` (``abusive.txt``,
``intimidating.txt``, ``disparaging.txt``; each file's header says where its
terms come from and what was left out on purpose). Their sections give the
confidence of a match (``[high]``, ``[medium]``, ``[low]``). All phrases go
into one Aho-Corasick automaton, built once at import; matching is
whole-word and case-insensitive (the Scunthorpe problem: "Scunthorpe",
"assessment", "classic" and "therapist" never match), on the sender's own
words only: ``> ...`` lines, the original under "On <date>, X wrote:" (and
Outlook's From:/Sent: block), forwarded messages, signature and disclaimers
are not counted against the sender.

One ``abusive_language`` finding per (category, where): ``count`` is the
number of matches, confidence the highest among them (one step lower in an
attached document), evidence the distinct terms masked (``b******, i****``),
never the sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.findings import Confidence, Finding
from relay.scanners import ScanContext
from relay.scanners.data import load_lexicon
from relay.scanners.text import PhraseMatcher, mask, merge_same_place, off_loop, own_chunks

CATEGORIES = ("abusive", "intimidating", "disparaging")
_LEVELS = {"high": Confidence.HIGH, "medium": Confidence.MEDIUM, "low": Confidence.LOW}


def _build() -> PhraseMatcher:
    labelled: dict[str, list[str]] = {}
    for category in CATEGORIES:
        for level, phrases in load_lexicon(f"{category}.txt").items():
            if level not in _LEVELS:
                raise ValueError(f"data/{category}.txt: unknown section [{level}]")
            labelled[f"{category}:{level}"] = phrases
    return PhraseMatcher(labelled)


_MATCHER = _build()


def _level(section: str, source: str) -> Confidence:
    """The section's confidence; one step lower in an attached document, whose words are
    often not the sender's own (a policy quoting examples of bullying, a forwarded letter)."""
    level = _LEVELS[section]
    return Confidence(max(Confidence.LOW, level - 1)) if source == "attachment" else level


class LanguageScanner:
    name = "language"

    def __init__(self, sources: tuple[str, ...] = ("body", "header", "attachment"),
                 max_evidence_terms: int = 3) -> None:
        self.sources = sources
        self.max_evidence_terms = max_evidence_terms

    async def scan(self, ctx: ScanContext) -> Sequence[Finding]:
        return await off_loop(self._find, ctx)

    def scan_sync(self, ctx: ScanContext) -> list[Finding]:
        return self._find(ctx)

    def _find(self, ctx: ScanContext) -> list[Finding]:
        findings: list[Finding] = []
        for chunk in own_chunks(ctx, self.sources):
            per_category: dict[str, tuple[int, Confidence, list[str]]] = {}
            for m in _MATCHER.find(chunk.low):
                category, _, level = m.label.partition(":")
                count, best, terms = per_category.get(category, (0, Confidence.LOW, []))
                if m.phrase not in terms:
                    terms.append(m.phrase)
                per_category[category] = (count + 1, max(best, _level(level, chunk.source)), terms)
            for category in CATEGORIES:
                if category in per_category:
                    count, best, terms = per_category[category]
                    evidence = ", ".join(mask(t) for t in terms[: self.max_evidence_terms])
                    findings.append(Finding("abusive_language", category, best, count, chunk.where,
                                            evidence, chunk.protected))
        return merge_same_place(findings)
