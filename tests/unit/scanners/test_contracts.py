"""ContractScanner (clause 4.1): language that makes or accepts offers, orders, quotes, terms, agreements."""

from __future__ import annotations

import asyncio

import pytest

from relay.envelope import Envelope
from relay.extract import extract
from relay.findings import TYPES
from relay.message import parse
from relay.organisation import Organisation
from relay.scanners import ScanContext
from relay.scanners.contracts import TYPES as CONTRACT_TYPES
from relay.scanners.contracts import ContractScanner

ORG = Organisation("Example", ("example.ac.uk",))


def scan(raw: bytes, rcpts=("buyer@supplier.com",), scanner=None):
    message = parse(raw)
    ctx = ScanContext(message, Envelope("alice@example.ac.uk", tuple(rcpts)), ORG, extract(message))
    return asyncio.run((scanner or ContractScanner()).scan(ctx))


def types(findings):
    return sorted(f.type for f in findings)


@pytest.mark.parametrize(("sentence", "expected"), [
    ("We accept your offer of 3 March and look forward to working with you.", "acceptance"),
    ("Please find our quotation for the catering attached.", "quote"),
    ("I attach purchase order 4471 for the chairs.", "order"),
    ("Our standard terms and conditions apply to this supply.", "terms"),
    ("We agree to pay half the fee on signature.", "agreement"),
    ("Once you return the signed contract we can start.", "agreement"),
    ("This will be legally binding on both parties.", "agreement"),
    ("We are pleased to offer you the position of lecturer.", "offer"),
    ("We would like to place an order for twelve licences.", "order"),
    ("Please accept this email as confirmation of the booking.", "acceptance"),
])
def test_contract_phrases_are_found(make_message, sentence, expected):
    findings = scan(make_message(body=f"Dear Sam,\n\n{sentence}\n\nKind regards\nAlice\n"))
    assert expected in types(findings)
    found = next(f for f in findings if f.type == expected)
    assert found.kind == "contract_language" and found.where == "body"
    assert sentence not in found.evidence   # lexicon phrase only, never the sentence


@pytest.mark.parametrize("sentence", [
    "Can we change the order of the agenda for Tuesday?",
    "The terms of reference for the working group are attached.",
    "In terms of cost, the two venues are similar.",
    "Job offer letter attached for your records.",
    "In order to finish on time we start at nine.",
    "The book binding on the old registers is coming loose.",
    "We agreed to meet at noon.",
    "The offer of help is appreciated, thanks.",
    "Please keep the quote marks in the citation.",
])
def test_hard_negatives(make_message, sentence):
    assert scan(make_message(body=f"Hi,\n\n{sentence}\n\nThanks\n")) == []


def test_disclaimer_about_contracts_is_not_contract_language(make_message):
    body = ("Hi Sam, see you on Friday.\n\n"
            "This email is confidential and intended solely for the addressee. It does not constitute a "
            "legally binding contract or offer on behalf of the Institute.\n")
    assert scan(make_message(body=body)) == []


def test_quoted_reply_is_not_counted(make_message):
    body = "Thanks, noted.\n\nOn Mon, 2 Mar 2026, Sam <sam@supplier.com> wrote:\n> We accept your offer.\n"
    assert scan(make_message(body=body)) == []


def test_newsletter_is_skipped_unless_asked(make_message):
    raw = make_message(body="Special offer: our best offer yet, terms and conditions apply.",
                       headers={"List-Unsubscribe": "<mailto:unsub@example.ac.uk>"})
    assert scan(raw) == []
    assert "terms" in types(scan(raw, scanner=ContractScanner(include_bulk=True)))


def test_external_only_option(make_message):
    raw = make_message(body="We accept your offer.", to="bob@example.ac.uk")
    assert scan(raw, ("bob@example.ac.uk",), ContractScanner(external_only=True)) == []
    assert types(scan(raw, ("bob@example.ac.uk",))) == ["acceptance"]
    assert types(scan(raw, ("bob@example.ac.uk", "x@partner.org"), ContractScanner(external_only=True))) == [
        "acceptance"]


def test_subject_and_attachment_are_read_and_counted(make_message):
    raw = make_message(subject="Purchase order 4471", body="Hello",
                       attachments=[("terms.txt", b"Terms and conditions of supply. Terms & conditions.", "text/plain")])
    findings = scan(raw)
    subject = [f for f in findings if f.where == "header Subject"]
    attached = [f for f in findings if f.where.startswith("part")]
    assert [f.type for f in subject] == ["order"]
    assert [(f.type, f.count) for f in attached] == [("terms", 2)]


def test_types_are_registered():
    assert set(CONTRACT_TYPES) == set(TYPES["contract_language"])


@pytest.mark.parametrize("sentence", ["I can do it for you tomorrow.", "We can offer you a meeting slot on Friday."])
def test_everyday_helpfulness_is_not_an_offer(make_message, sentence):
    assert scan(make_message(body=sentence)) == []
