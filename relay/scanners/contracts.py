"""Contract language in mail to external recipients (clause 4.1).

Phrases that make or accept offers, orders, quotes, terms or agreements
(``data/contracts.txt``; its header says where they come from) are found with
one Aho-Corasick automaton on whole words, in the subject, the body (the
sender's own words: quoted replies, signature and disclaimers removed) and
extracted documents. One ``contract_language`` finding per (type, where), with
the number of phrases and the first phrase as evidence (lexicon text, not the
sender's sentence).

Not reported (documented decisions):

* with ``external_only=True``, mail with no external envelope recipient.
  Off by default: the scanner names the fact and the policy decides (the
  shipped policy pairs this finding with ``external_recipients: true``);
* newsletters and list mail (``List-Unsubscribe``, ``List-Id``,
  ``Precedence: bulk|list|junk``), unless ``include_bulk=True``: a "special
  offer" to a mailing list makes no contract with anyone;
* the standard disclaimer "this e-mail does not constitute a binding
  contract" (it is stripped with the other disclaimers).
"""

from __future__ import annotations

from relay.findings import Confidence, Finding
from relay.scanners import ScanContext
from relay.scanners.data import load_lexicon
from relay.scanners.text import OutboundTextScanner, PhraseMatcher, merge_same_place, own_chunks

TYPES = ("offer", "acceptance", "order", "quote", "terms", "agreement")

_MATCHER = PhraseMatcher(load_lexicon("contracts.txt"))


class ContractScanner(OutboundTextScanner):
    name = "contracts"

    def __init__(self, external_only: bool = False, include_bulk: bool = False) -> None:
        self.external_only = external_only
        self.include_bulk = include_bulk

    def _find(self, ctx: ScanContext) -> list[Finding]:
        return find_contract_language(ctx)


def find_contract_language(ctx: ScanContext) -> list[Finding]:
    findings: list[Finding] = []
    for chunk in own_chunks(ctx):
        per_type: dict[str, list[str]] = {}
        for m in _MATCHER.find(chunk.low):
            per_type.setdefault(m.label, []).append(m.phrase)
        for type_ in TYPES:
            phrases = per_type.get(type_)
            if phrases:
                confidence = Confidence.MEDIUM if chunk.source == "attachment" else Confidence.HIGH
                findings.append(Finding("contract_language", type_, confidence, len(phrases), chunk.where,
                                        f'"{phrases[0][:60]}"', chunk.protected))
    return merge_same_place(findings)
